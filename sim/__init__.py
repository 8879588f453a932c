"""Software models: the bit-exact NumPy golden model and the cycle model."""
