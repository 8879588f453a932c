"""The host side: a layer pass lowered to the engine's and the tile array's input streams, run on
the generated Verilog, and compared dense against sparse."""
