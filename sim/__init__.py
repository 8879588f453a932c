"""Software models of the hardware: the bit-exact NumPy golden model, the lowering of each pass to\na masked GEMM, the block references and the exact cycle model."""
