"""The host link's bench in Amaranth's simulator: a :class:`~maskprop.hw.host_link.HostLink`
between a byte driver and a byte monitor, its register bus and memory served by models, and
every answer checked against :class:`~maskprop.sim.host_link_model.LinkModel` in order, byte
for byte, with the one scoreboard (:class:`~maskprop.tb.scoreboard.Scoreboard`).

Traffic is random where the protocol allows it: idle cycles between a request's bytes (fewer
than the link's timeout), backpressure on the answer, random waits on every handshake of the
register bus and the interrupt's delay after a RUN's start.
"""

import random
from dataclasses import dataclass, field

from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

from maskprop.hw.host_link import HostLink
from maskprop.sim.host_link_model import LinkModel
from maskprop.tb.scoreboard import DRAIN_CYCLES, Scoreboard

__all__ = ["Send", "LinkBench"]


@dataclass(frozen=True)
class Send:
    """One step of a bench's script: the bytes of a request sent back to back (with the
    bench's random idle between them), then what follows them.

    ``answered_after``: how many bytes the link reads before it answers (default: all), for a
    frame whose length the link refuses at its header; the rest arrive while it answers and
    are dropped. ``truncated``: the bytes are the start of a
    frame that never ends, and the link answers after its timeout. ``quiet``: idle cycles
    after the bytes (at least the link's timeout where the link must drop what follows)."""
    data: bytes
    truncated: bool = False
    answered_after: int | None = None
    quiet: int = 0


@dataclass
class LinkBench:
    """One run: ``link`` (a :class:`HostLink`), ``model`` (its :class:`LinkModel`, whose
    ``info`` must be the link's), the traffic's randomness and the interrupt's delay."""
    link: HostLink
    model: LinkModel
    seed: int
    idle: float = 0.3
    backpressure: float = 0.3
    bus_wait: float = 0.3
    irq_delay: tuple = (1, 40)
    max_cycles: int = 100_000
    cycles: int = 0
    answers: list = field(default_factory=list)

    def run(self, script: list[Send]) -> None:
        """Send each step, check the answers in order; raises on any difference."""
        link, model = self.link, self.model
        if model.info != link.info:
            raise ValueError(f"the model's info {model.info} is not the link's {link.info}")
        rng = random.Random(self.seed)
        # The RTL's memory and registers, from the model's before it executes the script.
        memory = list(model.memory)
        registers = dict(model.registers)
        expected = [model.truncated(step.data) if step.truncated
                    else model.request(step.data[:step.answered_after]) for step in script]
        flat = [byte for answer in expected for byte in answer]
        scoreboard = Scoreboard(flat, name="HostLink.o", seed=self.seed)
        state = {"irq_at": None, "done": False, "cycle": 0}
        top = Module()
        top.submodules.link = link
        top.domains.sync = ClockDomain()
        sim = Simulator(top)
        sim.add_clock(1e-8)

        async def driver(ctx):
            answered_bytes = 0
            for step, answer in zip(script, expected):
                for byte in step.data:
                    while rng.random() < self.idle:
                        ctx.set(link.i.valid, 0)
                        await ctx.tick()
                    ctx.set(link.i.valid, 1)
                    ctx.set(link.i.payload, byte)
                    await ctx.tick()
                ctx.set(link.i.valid, 0)
                for _ in range(step.quiet):
                    await ctx.tick()
                answered_bytes += len(answer)
                while scoreboard.received < answered_bytes:
                    if state["cycle"] > self.max_cycles:
                        scoreboard.finish(state["cycle"])
                        raise AssertionError(f"HostLink hung after {state['cycle']} cycles "
                                             f"(seed {self.seed})")
                    await ctx.tick()
            for _ in range(DRAIN_CYCLES):
                await ctx.tick()
            state["done"] = True

        async def monitor(ctx):
            async for _, _, valid, ready, payload in ctx.tick().sample(
                    link.o.valid, link.o.ready, link.o.payload):
                state["cycle"] += 1
                if valid and ready:
                    scoreboard.receive(payload, state["cycle"])
                if state["done"]:
                    ctx.set(link.o.ready, 1)
                else:
                    ctx.set(link.o.ready, rng.random() >= self.backpressure)

        async def register_bus(ctx):
            csr = link.csr
            pending_write = {}
            read_answer = None
            write_answer = None
            async for _, _, *seen in ctx.tick().sample(
                    csr.awvalid, csr.awready, csr.awaddr, csr.wvalid, csr.wready, csr.wdata,
                    csr.bvalid, csr.bready, csr.arvalid, csr.arready, csr.araddr,
                    csr.rvalid, csr.rready):
                (awvalid, awready, awaddr, wvalid, wready, wdata, bvalid, bready,
                 arvalid, arready, araddr, rvalid, rready) = seen
                if awvalid and awready:
                    pending_write["addr"] = awaddr
                if wvalid and wready:
                    pending_write["data"] = wdata
                if bvalid and bready:
                    ctx.set(csr.bvalid, 0)
                if rvalid and rready:
                    ctx.set(csr.rvalid, 0)
                if len(pending_write) == 2 and write_answer is None:
                    address, value = pending_write["addr"], pending_write["data"]
                    pending_write.clear()
                    error = address in model.bus_errors
                    if not error:
                        registers[address] = value
                        if (address, value) == model.run_start:
                            state["irq_at"] = (state["cycle"] + rng.randint(*self.irq_delay)
                                               if model.run_completes else None)
                            ctx.set(link.irq, 0)
                    write_answer = 2 if error else 0
                if arvalid and arready:
                    read_answer = (2 if araddr in model.bus_errors else 0,
                                   registers.get(araddr, 0))
                # Who is ready, and what is answered, from the next cycle.
                ctx.set(csr.awready, "addr" not in pending_write and write_answer is None
                        and rng.random() >= self.bus_wait)
                ctx.set(csr.wready, "data" not in pending_write and write_answer is None
                        and rng.random() >= self.bus_wait)
                ctx.set(csr.arready, read_answer is None and rng.random() >= self.bus_wait)
                if write_answer is not None and not (bvalid and not bready) \
                        and rng.random() >= self.bus_wait:
                    ctx.set(csr.bresp, write_answer)
                    ctx.set(csr.bvalid, 1)
                    write_answer = None
                if read_answer is not None and not (rvalid and not rready) \
                        and rng.random() >= self.bus_wait:
                    ctx.set(csr.rresp, read_answer[0])
                    ctx.set(csr.rdata, read_answer[1])
                    ctx.set(csr.rvalid, 1)
                    read_answer = None
                if state["irq_at"] is not None and state["cycle"] >= state["irq_at"]:
                    ctx.set(link.irq, 1)

        async def memory_port(ctx):
            port = link.mem
            reads = []                   # (edge after which the word is shown, word)
            edge = 0
            async for _, _, en, we, addr, wdata in ctx.tick().sample(
                    port.en, port.we, port.addr, port.wdata):
                edge += 1
                if en and we:
                    memory[addr] = wdata
                elif en:
                    reads.append((edge + link.mem_read_latency - 1, memory[addr]))
                while reads and reads[0][0] <= edge:
                    ctx.set(port.rdata, reads.pop(0)[1])

        sim.add_testbench(driver)
        sim.add_process(monitor)
        sim.add_process(register_bus)
        sim.add_process(memory_port)
        sim.run()
        scoreboard.finish()
        self.cycles = state["cycle"]
        self.answers = expected
        if memory != model.memory:
            wrong = [k for k, (a, b) in enumerate(zip(memory, model.memory)) if a != b]
            raise AssertionError(f"memory differs from the model's at words {wrong[:8]} "
                                 f"(seed {self.seed})")
        for address, value in model.registers.items():
            if registers.get(address, 0) != value:
                raise AssertionError(f"register {address:#x} is {registers.get(address, 0):#x}, "
                                     f"the model's {value:#x} (seed {self.seed})")
