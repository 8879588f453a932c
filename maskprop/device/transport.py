"""The byte pipes a :class:`~maskprop.device.board.Device` talks through: a serial port to a
real board (:class:`SerialTransport`, pyserial) or the Verilator simulation of the same top
level, UART included (:class:`SimulatedBoard`)."""

import abc
import hashlib
import os
import select
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

__all__ = ["Transport", "TransportError", "SerialTransport", "SimulatedBoard",
           "build_simulated_board"]


class TransportError(RuntimeError):
    """The board cannot be reached: no such port, the simulation did not build or died."""


class Transport(abc.ABC):
    """Bytes to and from a board (the interface :class:`SerialTransport` and
    :class:`SimulatedBoard` implement). :meth:`read` returns what arrived within ``timeout``
    seconds, up to ``size`` bytes (fewer, or none, when the time is up)."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data``."""

    @abc.abstractmethod
    def read(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes received within ``timeout`` seconds."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialTransport(Transport):
    """A board on a serial port (``/dev/ttyUSB0``, ``COM3``) at ``baud`` (the board build's;
    8N1, no flow control)."""

    def __init__(self, port: str, baud: int):
        try:
            import serial
        except ImportError:
            raise TransportError("pyserial is not installed: pip install pyserial") from None
        try:
            self._port = serial.Serial(port, baud, timeout=0)
        except (serial.SerialException, OSError, ValueError) as error:
            raise TransportError(f"cannot open serial port {port}: {error}") from None
        self.name = f"serial:{port}"

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def read(self, size: int, timeout: float) -> bytes:
        self._port.timeout = timeout
        return self._port.read(size)

    def close(self) -> None:
        self._port.close()


_SOURCE = "simulated_board.cpp"
#: What the simulated board's build depends on besides the Verilog and the C++ source.
_VERILATOR_FLAGS = ["--cc", "--exe", "--build", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                    "--top-module", "board_top", "-CFLAGS", "-O2", "--build-jobs", "2"]


def build_simulated_board(top) -> Path:
    """The Verilator executable of ``top`` (a :class:`~maskprop.hw.board_top.BoardTop`), built
    once into the build cache (keyed by its Verilog, the harness and the options) and reused.
    A few minutes for the default core, seconds afterwards."""
    import fcntl

    from maskprop.flow.toolchain import ToolchainError, build_cache, verilator_executable
    from maskprop.flow.verilog import generate_verilog

    verilog = generate_verilog(top, "board_top")
    source = (resources.files("maskprop.device") / _SOURCE).read_text()
    try:
        verilator = verilator_executable()
    except ToolchainError as error:
        raise TransportError(str(error)) from None
    key = hashlib.sha256("\0".join([verilog, source, str(verilator), *_VERILATOR_FLAGS])
                         .encode()).hexdigest()[:16]
    build_dir = build_cache() / f"simulated_board-{key}"
    executable = build_dir / "simulated_board"
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not executable.exists():
            build_dir.mkdir(parents=True, exist_ok=True)
            (build_dir / "board_top.v").write_text(verilog)
            (build_dir / _SOURCE).write_text(source)
            log = build_dir / "build.log"
            with open(log, "w") as output:
                done = subprocess.run(
                    [str(verilator), *_VERILATOR_FLAGS, "--Mdir", str(build_dir / "obj"),
                     "-o", str(executable), "board_top.v", _SOURCE],
                    cwd=build_dir, stdout=output, stderr=subprocess.STDOUT)
            if done.returncode != 0 or not executable.exists():
                raise TransportError(f"the simulated board did not build: see {log}")
    return executable


class SimulatedBoard(Transport):
    """The Verilator simulation of ``top`` (a :class:`~maskprop.hw.board_top.BoardTop`) as a
    board: its UART's lines bridged to a child process's standard streams
    (``maskprop/device/simulated_board.cpp``). Its clock runs while its link is busy or a byte
    is on the line, so time on the simulated board passes while a request is sent, executed
    (RUN waits for the core) and answered."""

    def __init__(self, top):
        executable = build_simulated_board(top)
        self.top = top
        self.name = "sim"
        # Its messages go to a file: a pipe nobody reads could fill and stop the simulation.
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen([str(executable), str(top.divisor)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr)
        os.set_blocking(self._process.stdout.fileno(), False)
        self.cycles = None

    def _messages(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _check_alive(self):
        if self._process.poll() is not None:
            error = self._messages().strip()
            raise TransportError(f"the simulated board exited ({self._process.returncode}): "
                                 f"{error}")

    def write(self, data: bytes) -> None:
        self._check_alive()
        try:
            self._process.stdin.write(data)
            self._process.stdin.flush()
        except BrokenPipeError:
            self._check_alive()
            raise

    def read(self, size: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        received = b""
        stdout = self._process.stdout
        while len(received) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([stdout], [], [], left)
            if not readable:
                break
            chunk = os.read(stdout.fileno(), size - len(received))
            if not chunk:
                self._check_alive()
                break
            received += chunk
        return received

    def close(self) -> None:
        """Stop the simulation; :attr:`cycles` is then the cycles it simulated."""
        if self._stderr.closed:
            return
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for line in self._messages().splitlines():
            if line.startswith("simulated_board: ") and line.endswith(" cycles"):
                self.cycles = int(line.split()[1])
        self._process.stdout.close()
        self._stderr.close()
