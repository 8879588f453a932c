"""Testbenches (``maskprop.tb``).

- ``traffic``: the traffic schedule (phases, random idle cycles, random backpressure, pulses)
  and the run record, shared by both benches;
- ``scoreboard``: the one in-order scoreboard (wrong, reordered, surplus, missing, late beats;
  drain window);
- ``drivers``: the cocotb driver and monitor of stream ports;
- ``amaranth_bench``: the stream bench in Amaranth's simulator;
- ``bench_stream``, ``bench_accumulation_tree``: the cocotb benches run on generated Verilog;
- ``harness``: what every cocotb bench does first (parameters, clock, reset, seed, report);
- ``runner``: builds the Verilog and runs a cocotb bench from Python (on request a fast build:
  only the top level's ports visible to cocotb);
- ``timing_reference``: the cycle of every handshake and counter event under any traffic;
- ``conv_reference``: a pass's results by the golden model's direct convolution;
- ``stimulus``: random stimulus and the table of small conv passes;
- ``axi_checker``: the AXI4 protocol checker and per-address traffic counter;
- ``bench_axi_streams``: what the AXI benches share (stream driver and sink, the AxiRam
  backdoor, pause generators for cocotbext-axi);
- ``bench_axi_dma``, ``bench_axi_ram``, ``bench_axi_dma_ram``, ``bench_registers``,
  ``bench_core``: the cocotb benches of the AXI DMA, the AXI RAM, the register file and the
  core;
- ``bench_core_fast``: the core's fast bench (``CoreSystem``: memory filled through the RAM's
  backdoor, one trigger on ``irq``, a fast build), which ``scripts/bench_sim_speed.py`` times.
"""
