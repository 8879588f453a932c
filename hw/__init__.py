"""Amaranth blocks of the maskprop accelerator core (see ARCHITECTURE.md section 4)."""
