#!/usr/bin/env python3
"""The fastest clock nextpnr grants a multiplier on ECP5: a product between two fabric
registers and nothing else, placed and routed on the part the core is measured on.

Issue 11 asks for 150 MHz post-route on the LFE5U-85F (speed grade 6). Every processing
element multiplies its two ``data_width``-bit operands in a MULT18X18D, and nextpnr's ECP5
timing model treats that DSP as combinational from its A/B inputs to its P outputs whether or
not its pipeline registers are used (its ``MULT18X18D_REGS_NONE`` delays; Yosys does not pack
the registers into the DSP either). So a register, the DSP and a register is the shortest
path any design with a DSP multiplier can have in nextpnr's report, and its delay is a
ceiling on that design's reported Fmax, whatever else the design does. This script measures
it, at the operand widths of the default configuration (16 bits) and of the UP5K preset
(8 bits), and once with the PE's accumulator after the product register (the product's own
register, then a ``acc_width``-bit adder, as in ``hw/sparse_pe.py``) to show the adder is not
what binds.

The fixture is not part of the generator: it is the multiplier stage of a PE cut out, with
the flow's harness around it like every other block of docs/fpga.md.

    .venv/bin/python scripts/bench_dsp_floor.py [--device LFE5U-85F] [--out DIR] [--json FILE]
"""

import argparse
import tempfile
from pathlib import Path

from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import DEFAULT, FPGA_ICE40
from maskprop.flow.fpga import critical_path_text, resolve_device, run_flow

# scripts/bench_output.py
from bench_output import write_json

#: Issue 11 item 4's clock for the array and the core on the ECP5-85F.
TARGET_MHZ = 150.0


class RegisteredProduct(wiring.Component):
    """``o = a * b`` between registers: ``a`` and ``b`` registered on entry, the product
    registered, and with ``acc_width`` the product added into an accumulator register (the
    PE's ``acc += product``). Latency 2 cycles (3 with the accumulator); throughput one product
    a cycle.

    Ports: ``a``, ``b`` (``signed(width)``), ``o`` (``signed(2 * width)``, or
    ``signed(acc_width)``)."""

    def __init__(self, width: int, acc_width: int | None = None):
        self.width = width
        self.acc_width = acc_width
        out_width = acc_width if acc_width is not None else 2 * width
        super().__init__({"a": In(signed(width)), "b": In(signed(width)),
                          "o": Out(signed(out_width))})

    def elaborate(self, platform):
        m = Module()
        a = Signal(signed(self.width))
        b = Signal(signed(self.width))
        product = Signal(signed(2 * self.width))
        m.d.sync += [a.eq(self.a), b.eq(self.b), product.eq(a * b)]
        if self.acc_width is None:
            m.d.comb += self.o.eq(product)
        else:
            acc = Signal(signed(self.acc_width))
            m.d.sync += acc.eq(acc + product)
            m.d.comb += self.o.eq(acc)
        return m


#: (label, operand width, accumulator width or None), the default configuration's and the
#: UP5K preset's operands.
FIXTURES = (
    (f"{DEFAULT.data_width}-bit product", DEFAULT.data_width, None),
    (f"{DEFAULT.data_width}-bit product into a {DEFAULT.acc_width}-bit accumulator",
     DEFAULT.data_width, DEFAULT.acc_width),
    (f"{FPGA_ICE40.data_width}-bit product", FPGA_ICE40.data_width, None),
)


def measure(device: str, out: Path) -> list[dict]:
    """Each fixture placed and routed on ``device`` (ECP5); their flow reports."""
    rows = []
    for label, width, acc_width in FIXTURES:
        name = f"product{width}" + (f"_acc{acc_width}" if acc_width else "")
        report = run_flow(RegisteredProduct(width, acc_width), name, "ecp5", out / name,
                          device=device)
        print(report.format())
        rows.append({"label": label, "width": width, "acc_width": acc_width,
                     **report.as_dict()})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="LFE5U-85F",
                        help="ECP5 device (default LFE5U-85F, where issue 11 asks for 150 MHz)")
    parser.add_argument("--out", type=Path, default=None,
                        help="work directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    try:
        device = resolve_device("ecp5", args.device)
    except ValueError as error:
        parser.error(f"--device: {error}")
    with tempfile.TemporaryDirectory() as scratch:
        rows = measure(device, args.out or Path(scratch))
    for row in rows:
        path = row["critical_path"]
        print(f"{row['label']}: {row['fmax_mhz']:.1f} MHz, {critical_path_text(path)}")
    if args.json:
        write_json(args.json, {"device": device, "target_mhz": TARGET_MHZ, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
