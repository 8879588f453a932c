"""From Amaranth to tools: Verilog generation, simulator/toolchain discovery, Yosys + nextpnr."""
