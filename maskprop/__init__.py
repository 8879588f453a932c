"""maskprop: a generator for a sparse CNN training accelerator core."""

__version__ = "0.1.0"
