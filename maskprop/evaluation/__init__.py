"""Whole-network evaluation on the cycle model: per-layer, per-pass speedups, tables and plots."""
