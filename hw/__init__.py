"""Amaranth blocks of the maskprop accelerator core (see docs/architecture.md section 4)."""
