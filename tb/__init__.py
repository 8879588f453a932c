"""cocotb testbenches and the runner that builds generated Verilog for them."""
