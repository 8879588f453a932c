"""The one configuration object that drives the RTL, the golden model and the cycle model."""

from dataclasses import dataclass, asdict, replace

import numpy as np

__all__ = ["Config", "Selection", "CoreConfig", "CORE_ARRAY", "CORE_ARRAY_FIELDS", "CORE_DEFAULT",
           "DEFAULT", "DEFAULT_WINDOW", "EVALUATION", "FPGA_SMALL", "FPGA_ICE40", "FPGA_CORE",
           "check_range", "ceil_log2", "container_bits", "y_chunk_shift",
           "GENERATABLE_BUFFER_BITS", "JoinSettings", "check_join_lanes"]

# The most bits the tile array's two buffers (Y buffer and row buffer) may hold for its RTL to be
# generated. Amaranth 0.5 has no uninitialized memory: `init=[]` means all zeros, and its RTLIL
# backend writes that as a $meminit_v2 cell whose data is one netlist constant per memory bit,
# built as a Python object each (about 90 % of the Python time); Yosys then parses that constant
# and writes one `initial` assignment per word (all of Yosys' time: 30 s with the Y buffer's
# init at 8 Mibit, 0.8 s without). So generation time and memory grow with the buffers,
# whatever the rest of the design. Measured, the tile array with the default configuration and
# max_cols 128 / 254 / 512 / 1024 (2 / 4 / 8 / 16 Mibit), 2 shared cores: 10-13 s, 0.3 GB /
# 18-20 s, 0.56 GB / 47-70 s, 1.1 GB / 107-161 s, 2.2 GB. 2**22 bits keeps generation near
# 20 s and 0.6 GB (the test that generates the largest configuration at the limit stays well
# under a minute); max_chunks = 4096 with max_cols = 65536 (the cycle model's evaluation
# configuration) would be 64 Gibit.
GENERATABLE_BUFFER_BITS = 1 << 22
# Measured cost per Mibit of buffer at 8 Mibit, for the estimate in check_generatable's message.
_SECONDS_PER_MIBIT, _BYTES_PER_MIBIT = 6.0, 140e6


def ceil_log2(n: int) -> int:
    """Smallest ``k`` with ``2**k >= n`` (0 for n <= 1)."""
    return max(0, (int(n) - 1).bit_length())


def y_chunk_shift(chunks: int) -> int:
    """log2 of the tile array's Y buffer column stride for a pass of ``chunks`` chunks per
    column: ``ceil(log2(max(1, chunks)))``. Y chunk ``k`` of column ``j`` sits at
    ``(j << shift) | k``, so a stride rounded up to a power of two keeps the address a
    concatenation (no multiplier) at the cost of up to half the buffer for a pass whose chunks
    are just above a power of two (288 chunks take a stride of 512)."""
    return ceil_log2(max(1, chunks))


def container_bits(data_width: int) -> int:
    """Bits of the container one element of ``data_width`` bits takes in the core's memory: 8,
    16 or 32, the smallest that holds it."""
    check_range("data_width", data_width, 2, 32)
    return next(bits for bits in (8, 16, 32) if data_width <= bits)


def check_range(name: str, value, low: int, high: int) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming the parameter and its range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], not {value}")
    return value


@dataclass(frozen=True)
class Selection:
    """Which elements of a chunk each multiplier lane selects its operands from
    (docs/architecture.md section 4.1).

    The chunk's ``vec`` elements are dealt round-robin into ``segments = vec / window``
    selection segments of ``window`` elements: segment ``s`` holds positions ``s, s + segments,
    s + 2 * segments, ...``, and its ``segment_lanes = lanes / segments`` lanes (lanes
    ``s * segment_lanes ..``) select among those only, a ``window``-to-1 selection per lane and
    operand. A chunk takes as many decoder beats as its busiest segment needs. Interleaved
    rather than consecutive segments, because partial chunks are prefixes (a layer's channels
    below a multiple of ``vec``, backward-weight's last pixels): a prefix of ``n`` elements
    puts at most ``ceil(n / segments)`` into a segment, so it takes ``ceil(n / lanes)`` beats,
    as with the full window. ``window = vec`` is the full selection (one segment).

    ``window`` (default ``vec``) must be a divisor of ``vec`` whose ``vec / window`` divides
    ``lanes`` (:meth:`windows`); ``ValueError`` names the parameter otherwise.
    """
    vec: int
    lanes: int
    window: int | None = None

    def __post_init__(self):
        check_range("vec", self.vec, 1, 64)
        check_range("lanes", self.lanes, 1, self.vec)
        if self.window is None:
            object.__setattr__(self, "window", self.vec)
        allowed = self.windows(self.vec, self.lanes)
        if isinstance(self.window, bool) or self.window not in allowed:
            raise ValueError(f"select_window must be one of {allowed} (a divisor of vec="
                             f"{self.vec} whose vec / select_window divides lanes={self.lanes}),"
                             f" not {self.window!r}")

    @staticmethod
    def windows(vec: int, lanes: int) -> list:
        """The windows ``vec`` and ``lanes`` allow, ascending (the last is ``vec``)."""
        return [w for w in range(1, vec + 1) if vec % w == 0 and lanes % (vec // w) == 0]

    @staticmethod
    def default_window(vec: int, lanes: int) -> int:
        """:attr:`Config.select_window`'s default: the narrowest allowed window of at least
        :data:`DEFAULT_WINDOW` elements (all ``vec`` if fewer). At vec 16, lanes 4 the window
        of 4 gives the most training steps per second per LUT of the tile array, measured on
        the five networks and the digits CNN (``scripts/bench_window.py``, docs/results.md
        "Selection windows"). A narrower window, where ``vec`` and ``lanes`` allow one (1 and 2
        at vec 8, lanes 8), is not taken: it has not been measured, and a window of one
        element leaves nothing to skip inside a chunk."""
        return next(w for w in Selection.windows(vec, lanes) if w >= min(vec, DEFAULT_WINDOW))

    @property
    def segments(self) -> int:
        return self.vec // self.window

    @property
    def segment_lanes(self) -> int:
        """Lanes serving each segment."""
        return self.lanes // self.segments

    def lane_segment(self, lane: int) -> int:
        """The segment lane ``lane`` serves."""
        return lane // self.segment_lanes

    def positions(self, segment: int) -> range:
        """The chunk positions of ``segment``, in the order of its offsets."""
        return range(segment, self.vec, self.segments)

    def counts(self, elements) -> np.ndarray:
        """Elements of each segment: ``(..., vec)`` booleans -> ``(..., segments)`` counts."""
        elements = np.asarray(elements, dtype=bool)
        return np.count_nonzero(
            elements.reshape(*elements.shape[:-1], self.window, self.segments), axis=-2)

    def beats(self, elements) -> np.ndarray:
        """Decoder beats of each chunk whose elements to issue are ``elements`` (``(...,
        vec)`` booleans): the busiest segment's ``ceil(n_s / segment_lanes)``, which is
        ``ceil(n / lanes)`` with the full window; 0 for a chunk without one."""
        return (-(-self.counts(elements) // self.segment_lanes)).max(axis=-1)

    def split(self, positions) -> list:
        """Chunk positions (ascending) per segment: ``segments`` lists, each ascending."""
        return [[p for p in positions if p % self.segments == s] for s in range(self.segments)]


#: Elements each lane selects among by default (:meth:`Selection.default_window`).
DEFAULT_WINDOW = 4


class _DerivedWindow(int):
    """``Config.select_window`` left to its default (:meth:`Selection.default_window`): an int
    in every use, but re-derived, not kept, when a configuration is copied with another
    ``vec`` or ``lanes``."""

    __slots__ = ()


class _DerivedWords(int):
    """``Config.y_words`` left to its default (``max_cols * max_chunks``): an int in every use
    (equal to, and hashing as, the same number given explicitly), but re-derived, not kept,
    when a configuration is copied with other buffers."""

    __slots__ = ()


@dataclass(frozen=True)
class Config:
    """Hardware configuration of a maskprop core.

    Parameters
    ----------
    vec : int
        Elements per chunk along the reduction dimension (docs/architecture.md section 3.1), 1..64.
    lanes : int
        Multipliers per PE, i.e. nonzero indices issued per cycle, 1..vec.
    tiles : int
        PE + accumulation-tree columns sharing one decoder, 1..64.
    data_width : int
        Width of the signed operands, 2..32. Products are exact (``2 * data_width`` bits).
    acc_width : int
        Width of the signed accumulators, from the adder tree's output width
        (``2 * data_width + ceil(log2(lanes))``) to 64.
    tree_stages : int or None
        Register stages inside the adder tree, 0..ceil(log2(lanes)); ``None`` registers every level.
    col_block : int
        Output columns one row word of the tile array covers (its output mask is compacted
        ``tiles`` at a time), ``tiles``..64.
    max_chunks : int
        Chunks of one reduction the tile array's row buffer holds (reduction length
        ``<= max_chunks * vec``), a power of two in 1..4096.
    max_cols : int
        Output columns of one pass (the tile array's column addresses), 1..65536.
    select_window : int or None
        Candidates each multiplier lane selects its operands from. ``vec``: any element of the
        chunk (the full crossbar, a ``vec``-to-1 selection per lane and operand). ``None``
        (normalized on construction, and derived again in a copy with another ``vec`` or
        ``lanes``): :meth:`Selection.default_window`, 4 at vec 16, lanes 4. Otherwise the
        chunk's elements are dealt round-robin into ``vec / select_window`` segments of
        ``select_window``, each served by its own ``lanes * select_window / vec`` lanes, which
        select among its elements only (a ``select_window``-to-1 selection): cheaper, but a
        chunk takes as many beats as its busiest segment needs (:class:`Selection`,
        docs/architecture.md section 4.1).
        A divisor of ``vec`` that is at least ``vec / lanes`` with ``vec / select_window``
        dividing ``lanes``: :meth:`select_windows` lists them.
    y_words : int or None
        Words (Y chunks) of the tile array's Y buffer. ``None`` (normalized on construction)
        is ``max_cols * max_chunks``: every column of the longest reduction. Otherwise a power
        of two in ``[max_chunks, max_cols * max_chunks]`` (at least one column of the longest
        reduction): a long row buffer (deep reductions without partial sums) no longer needs a
        Y buffer of ``max_cols`` such columns. The column stride is a runtime power of two,
        ``1 << y_chunk_shift(chunks)`` for a pass of ``chunks`` chunks per column, so a pass
        fits when :meth:`y_fits` says so. Left to its default, a copy with other buffers
        (:func:`dataclasses.replace`, ``Config(**config.as_dict())``) derives it again; a value
        given explicitly is kept.

    Presets
    -------
    :data:`DEFAULT` is ``Config()``. :data:`EVALUATION` is the defaults with the largest buffers
    (``max_chunks=4096, max_cols=65536``), which whole-network evaluation assumes (the cycle
    model never generates RTL); :meth:`for_evaluation` gives any configuration those buffers.
    :data:`FPGA_SMALL` is the defaults with the tile array's buffers sized to fit the ECP5
    LFE5U-25F (``col_block=8, max_chunks=16, max_cols=32``, docs/fpga.md). :data:`FPGA_ICE40`
    is a small tile array for the iCE40 UP5K (2 tiles x 2 lanes, vec 8, 8-bit data).

    Generatable range
    -----------------
    Every configuration in these ranges drives the golden and cycle models (network evaluation
    uses ``max_chunks=4096, max_cols=65536``: :meth:`for_evaluation`), but the tile array's RTL
    is generated only when its Y buffer (``y_words`` words of ``vec * data_width`` bits; by
    default ``max_cols * max_chunks``) and row buffer
    (``max_chunks`` words of ``vec * (data_width + 1) + log2(max_chunks)`` bits) hold at most
    :data:`GENERATABLE_BUFFER_BITS` = 2**22 bits together, e.g. ``max_cols <= 254`` with the
    defaults (``max_chunks=64``, ``vec=16``, ``data_width=16``); :meth:`check_generatable`
    refuses the rest. The other blocks have no buffers and no such limit.
    """

    vec: int = 16
    lanes: int = 4
    tiles: int = 4
    data_width: int = 16
    acc_width: int = 48
    tree_stages: int | None = None
    col_block: int = 32
    max_chunks: int = 64
    max_cols: int = 128
    y_words: int | None = None
    select_window: int | None = None

    def __post_init__(self):
        check_range("vec", self.vec, 1, 64)
        check_range("lanes", self.lanes, 1, self.vec)
        check_range("tiles", self.tiles, 1, 64)
        check_range("data_width", self.data_width, 2, 32)
        check_range("acc_width", self.acc_width, self.tree_width, 64)
        if self.tree_stages is None:
            object.__setattr__(self, "tree_stages", self.tree_depth)
        check_range("tree_stages", self.tree_stages, 0, self.tree_depth)
        check_range("col_block", self.col_block, self.tiles, 64)
        check_range("max_chunks", self.max_chunks, 1, 4096)
        if self.max_chunks & (self.max_chunks - 1):
            raise ValueError(f"max_chunks must be a power of two in [1, 4096], "
                             f"not {self.max_chunks}")
        check_range("max_cols", self.max_cols, 1, 65536)
        if self.select_window is None or isinstance(self.select_window, _DerivedWindow):
            object.__setattr__(self, "select_window", _DerivedWindow(
                Selection.default_window(self.vec, self.lanes)))
        Selection(self.vec, self.lanes, self.select_window)          # validates it
        full = self.max_cols * self.max_chunks
        if self.y_words is None or isinstance(self.y_words, _DerivedWords):
            # Derived from this configuration's buffers, and marked so that a copy with other
            # buffers (dataclasses.replace, Config(**as_dict())) derives it again instead of
            # keeping a size that no longer matches them.
            object.__setattr__(self, "y_words", _DerivedWords(full))
        check_range("y_words", self.y_words, self.max_chunks, full)
        # The full size need not be a power of two (max_cols is any number); a smaller buffer
        # must be, so that it is exactly a block RAM's depth.
        if self.y_words != full:
            if self.y_words & (self.y_words - 1):
                raise ValueError(f"y_words must be a power of two in [{self.max_chunks}, "
                                 f"{full}] (max_chunks, max_cols * max_chunks) or "
                                 f"max_cols * max_chunks, not {self.y_words}")

    def select_windows(self) -> list:
        """The ``select_window`` values this ``vec`` and ``lanes`` allow, ascending (the last
        is ``vec``, the full selection)."""
        return Selection.windows(self.vec, self.lanes)

    @property
    def window(self) -> int:
        """Candidates of each lane's operand selection (``select_window``)."""
        return self.select_window

    @property
    def full_window(self) -> "Config":
        """The same configuration with the full selection window (the full crossbar)."""
        return replace(self, select_window=self.vec)

    @property
    def selection(self) -> Selection:
        """The lanes' :class:`Selection` (segments and the lanes that serve them)."""
        return Selection(self.vec, self.lanes, self.window)

    #: :func:`y_chunk_shift`, reachable from a configuration.
    y_chunk_shift = staticmethod(y_chunk_shift)

    def y_fits(self, cols: int, chunks: int, *, half: bool = False) -> bool:
        """Whether a pass of ``cols`` output columns of ``chunks`` chunks each fits the tile
        array: the reduction in the row buffer (``chunks <= max_chunks``), the columns in its
        column addresses (``cols <= max_cols``) and in the Y buffer at the pass's stride
        (``cols << y_chunk_shift(chunks) <= y_words``); ``half``: in half the Y buffer (the
        core's weight prefetch, :attr:`y_halves`)."""
        words = self.y_words // 2 if half else self.y_words
        return (chunks <= self.max_chunks and cols <= self.max_cols and
                cols << y_chunk_shift(chunks) <= words and (self.y_halves or not half))

    @property
    def y_halves(self) -> bool:
        """Whether the Y buffer has two halves a pass can run from (``TileArray.y_half``): its
        ``y_words`` is a power of two of at least 2, so a half is the top address bit."""
        words = int(self.y_words)
        return words >= 2 and words & (words - 1) == 0

    @property
    def product_width(self) -> int:
        """Width of an exact signed product of two operands."""
        return 2 * self.data_width

    @property
    def tree_depth(self) -> int:
        """Adder levels in a ``lanes``-to-1 tree."""
        return ceil_log2(self.lanes)

    @property
    def tree_width(self) -> int:
        """Width of the adder tree's exact sum of ``lanes`` products."""
        return self.product_width + self.tree_depth

    @property
    def data_min(self) -> int:
        return -(1 << (self.data_width - 1))

    @property
    def data_max(self) -> int:
        return (1 << (self.data_width - 1)) - 1

    def max_reduction(self) -> int:
        """Longest reduction whose worst-case sum cannot overflow ``acc_width`` bits.

        The largest product magnitude is ``data_min**2 = 2**(2*data_width - 2)``; ``n`` of them
        sum to at most ``n * 2**(2*data_width-2)``, which must not exceed ``2**(acc_width-1) - 1``.
        """
        return ((1 << (self.acc_width - 1)) - 1) // (self.data_min * self.data_min)

    @property
    def y_buffer_bits(self) -> int:
        """Bits of the tile array's Y buffer: ``y_words`` chunks of ``vec`` operands (one
        copy, read by every tile)."""
        return self.y_words * self.vec * self.data_width

    def _row_buffer_bits(self, max_chunks: int) -> int:
        # TileArray's row buffer: max_chunks entries of an X chunk, its mask and its chunk index.
        return max_chunks * (self.vec * (self.data_width + 1) + max(1, ceil_log2(max_chunks)))

    @property
    def row_buffer_bits(self) -> int:
        """Bits of the tile array's row buffer (the X chunks of one row, for the replays)."""
        return self._row_buffer_bits(self.max_chunks)

    @property
    def buffer_bits(self) -> int:
        """Bits of the tile array's buffers, which :meth:`check_generatable` limits."""
        return self.y_buffer_bits + self.row_buffer_bits

    def largest_generatable_max_cols(self, max_chunks: int) -> int:
        """Largest ``max_cols`` (at most 65536) whose tile array is generatable with
        ``max_chunks``, the Y buffer's default size (``y_words = max_cols * max_chunks``) and
        this configuration's other parameters; 0 if none."""
        room = GENERATABLE_BUFFER_BITS - self._row_buffer_bits(max_chunks)
        return max(0, min(65536, room // (max_chunks * self.vec * self.data_width)))

    def largest_generatable_max_chunks(self, max_cols: int) -> int:
        """Largest power-of-two ``max_chunks`` (at most 4096) whose tile array is generatable
        with ``max_cols``, the Y buffer's default size (``y_words = max_cols * max_chunks``)
        and this configuration's other parameters; 0 if none."""
        for max_chunks in (1 << k for k in range(12, -1, -1)):
            if (max_cols * max_chunks * self.vec * self.data_width +
                    self._row_buffer_bits(max_chunks) <= GENERATABLE_BUFFER_BITS):
                return max_chunks
        return 0

    def largest_generatable_y_words(self, max_chunks: int, max_cols: int) -> int:
        """Largest ``y_words`` a configuration with ``max_chunks`` and ``max_cols`` accepts (a
        power of two in ``[max_chunks, max_cols * max_chunks]``, or that product) whose tile
        array is generatable with this configuration's other parameters; 0 if none."""
        room = GENERATABLE_BUFFER_BITS - self._row_buffer_bits(max_chunks)
        words = min(max_cols * max_chunks, max(0, room) // (self.vec * self.data_width))
        if words != max_cols * max_chunks:
            words = 1 << (words.bit_length() - 1) if words else 0
        return words if words >= max_chunks else 0

    def check_generatable(self) -> None:
        """Raise ``ValueError`` unless the tile array of this configuration can be generated.

        The limit is on its buffers: at most :data:`GENERATABLE_BUFFER_BITS` (2**22) bits in
        the Y buffer and the row buffer together, because Amaranth writes an initial value for
        every buffer bit (about 20 s and 0.6 GB at the limit, and growing faster than linearly:
        max_cols=1024 with the defaults, 16 Mibit, took over 100 s and 2.2 GB). The message
        names what sizes the Y buffer (``max_cols`` and ``max_chunks`` when ``y_words`` is
        their product, else ``y_words``), the buffers' sizes, the limit and the largest values
        that fit. Config itself accepts larger buffers: the cycle model never generates.
        """
        bits = self.buffer_bits
        if bits <= GENERATABLE_BUFFER_BITS:
            return
        mibit = bits / (1 << 20)
        fits = []
        full = self.y_words == self.max_cols * self.max_chunks
        if full:
            # The Y buffer follows max_cols x max_chunks: propose smaller ones (y_words derived).
            cols = self.largest_generatable_max_cols(self.max_chunks)
            if cols:
                fits.append(f"max_cols={cols} at max_chunks={self.max_chunks}")
            chunks = self.largest_generatable_max_chunks(self.max_cols)
            if chunks:
                fits.append(f"max_chunks={chunks} at max_cols={self.max_cols}")
        else:
            # An explicit Y buffer does not follow max_cols: propose a smaller one.
            words = self.largest_generatable_y_words(self.max_chunks, self.max_cols)
            if words:
                fits.append(f"y_words={words} at max_chunks={self.max_chunks}")
        if not fits:
            fits.append(f"max_cols={self.largest_generatable_max_cols(1)} at max_chunks=1")
        sized_by = (f"max_cols x max_chunks = {self.max_cols} x {self.max_chunks}" if full else
                    f"y_words = {self.y_words:,} at max_chunks = {self.max_chunks}")
        raise ValueError(
            f"{sized_by} is too large to "
            f"generate: the Y buffer of {self.y_words:,} words x "
            f"{self.vec * self.data_width} bits (vec x data_width) and the row buffer of "
            f"{self.max_chunks:,} words hold {bits:,} bits, more than the "
            f"{GENERATABLE_BUFFER_BITS:,} (2**22) that generation is limited to: Amaranth "
            f"writes an initial value for every bit, which would take roughly "
            f"{_duration(mibit * _SECONDS_PER_MIBIT)} and {_size(mibit * _BYTES_PER_MIBIT)} "
            f"to generate; the largest generatable is {' or '.join(fits)}")

    def for_evaluation(self) -> "Config":
        """This configuration with the largest buffers Config accepts (``max_chunks=4096,
        max_cols=65536``): whole networks need buffers the RTL would tile, and the cycle model
        assumes they fit; the Y buffer holds every column at the longest reduction
        (``y_words`` their product). Not generatable (:meth:`check_generatable`)."""
        return replace(self, max_chunks=4096, max_cols=65536, y_words=None)

    def as_dict(self) -> dict:
        return asdict(self)


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:.0f} s"


def _size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:,.1f} {unit}"
        size /= 1000


#: ``Config()``.
DEFAULT = Config()
#: Whole-network evaluation's configuration: the defaults with the largest buffers
#: (:meth:`Config.for_evaluation`).
EVALUATION = DEFAULT.for_evaluation()
#: The tile array sized to fit the ECP5 LFE5U-25F of docs/fpga.md: the defaults with
#: 32 columns x 16 chunks of Y buffer and ``col_block`` 8.
FPGA_SMALL = Config(col_block=8, max_chunks=16, max_cols=32)
#: A tile array small enough for the iCE40 UP5K (5,280 LCs, 8 SB_MAC16) of docs/fpga.md: 2 tiles
#: x 2 lanes over chunks of 8 elements of 8 bits, 24-bit accumulators, 8 columns x 4 chunks of
#: Y buffer.
FPGA_ICE40 = Config(vec=8, lanes=2, tiles=2, data_width=8, acc_width=24, col_block=2,
                    max_chunks=4, max_cols=8)
#: The core's tile array (``CoreConfig``'s default): the defaults with a row buffer of 512
#: chunks, which holds every reduction of the five evaluated networks (3x3x512 is 288 chunks:
#: the core splits passes but never a reduction), and the default's Y buffer of 8192 words.
CORE_ARRAY_FIELDS = {"max_chunks": 512, "y_words": 8192}
CORE_ARRAY = Config(**CORE_ARRAY_FIELDS)


@dataclass(frozen=True)
class JoinSettings:
    """The join array's own parameters beside a :class:`Config`'s multipliers and buffers
    (``hw/join_array.py``, ``JoinArray.from_config``): ``group``, the chunks of a lanes' mask
    word (the look-ahead); ``queue``, the outputs a tile holds; ``ring``, the ``X`` rows the
    array holds. The defaults are the ECP5 configuration ``scripts/bench_join.py`` measures."""
    group: int = 4
    queue: int = 8
    ring: int = 4


def check_join_lanes(config: "Config") -> None:
    """``ValueError`` unless the join array can have ``config``'s multipliers: it has a lane per
    selection segment (``JoinArray.from_config``), so ``lanes`` must be ``vec /
    select_window``."""
    segments = config.selection.segments
    if config.lanes != segments:
        raise ValueError(f"lanes must equal vec / select_window = {segments} for the join array "
                         f"(a lane a segment), not {config.lanes}")


#: Bits of one of backward-weight's partial sums in memory (``hw/partial_sums.py``).
PARTIAL_SUM_BITS = 64


def beat_sum_words(tiles: int, bus_width: int) -> int:
    """Memory words of one result beat's partial sums (``tiles`` values of
    :data:`PARTIAL_SUM_BITS`) on a bus of ``bus_width`` bits (``hw/partial_sums.py``'s
    layout)."""
    return -(-tiles * PARTIAL_SUM_BITS // bus_width)


@dataclass(frozen=True)
class CoreConfig:
    """The accelerator core (``hw/core.py``, docs/architecture.md section 8): the tile array of
    ``array``, its memory port and its X scratchpad.

    Parameters
    ----------
    array : Config
        The tile array (and the datapath widths); default :data:`CORE_ARRAY`.
    x_words : int
        Words of the X scratchpad, which holds the pass's broadcast input tensor (one word = one
        chunk of ``vec`` channels of one pixel), a power of two in 2..65536.
    addr_width : int
        Byte address bits of the memory port, 12..64.
    max_burst : int
        Beats per AXI burst at most, a power of two in 1..256.
    max_outstanding : int
        AXI bursts in flight per direction at most, 1..16.
    row_block_chunks : int or None
        Backward-weight's row-block buffer (``hw/row_block_buffer.py``): chunks of ``vec``
        output pixels per row, so a command reduces over at most ``vec * row_block_chunks``
        pixels; a power of two in ``1..array.max_chunks``, default ``min(32, max_chunks)``.
        The buffer holds two banks of ``vec`` rows: ``2 * vec * row_block_chunks`` entries of
        ``vec * (data_width + 1)`` bits.

    The memory port is one chunk wide: ``vec`` elements in containers of 8, 16 or 32 bits
    (the smallest that holds ``data_width``), which must make a power of two from 8 to 1024 bits.
    """

    array: Config = CORE_ARRAY
    x_words: int = 4096
    addr_width: int = 32
    max_burst: int = 16
    max_outstanding: int = 4
    row_block_chunks: int | None = None

    def __post_init__(self):
        if not isinstance(self.array, Config):
            raise ValueError(f"array must be a Config, not {self.array!r}")
        if self.row_block_chunks is None:
            object.__setattr__(self, "row_block_chunks", min(32, self.array.max_chunks))
        check_range("row_block_chunks", self.row_block_chunks, 1, self.array.max_chunks)
        if self.row_block_chunks & (self.row_block_chunks - 1):
            raise ValueError(f"row_block_chunks must be a power of two in "
                             f"[1, {self.array.max_chunks}] (max_chunks), not "
                             f"{self.row_block_chunks}")
        check_range("x_words", self.x_words, 2, 65536)
        if self.x_words & (self.x_words - 1):
            raise ValueError(f"x_words must be a power of two in [2, 65536], not {self.x_words}")
        check_range("addr_width", self.addr_width, 12, 64)
        check_range("max_burst", self.max_burst, 1, 256)
        if self.max_burst & (self.max_burst - 1):
            raise ValueError(f"max_burst must be a power of two in [1, 256], not "
                             f"{self.max_burst}")
        check_range("max_outstanding", self.max_outstanding, 1, 16)
        width = self.bus_width
        if width & (width - 1) or not 8 <= width <= 1024:
            raise ValueError(f"vec x container bits = {self.array.vec} x {self.container_bits} "
                             f"= {width} bits is not a power of two from 8 to 1024: the memory "
                             f"port carries one chunk per word; use a vec of 1, 2, 4, ... 64")

    @property
    def container_bits(self) -> int:
        """Bits one element takes in memory: 8, 16 or 32."""
        return container_bits(self.array.data_width)

    @property
    def bus_width(self) -> int:
        """Bits of the memory port: one chunk."""
        return self.array.vec * self.container_bits

    @property
    def bus_bytes(self) -> int:
        return self.bus_width // 8

    @property
    def partial_sums(self) -> bool:
        """Whether backward-weight's reduction can be split with partial sums
        (``hw/partial_sums.py``; docs/architecture.md section 8.3): they go to memory as 64-bit
        values, a result beat's ``tiles`` of them in ``ceil(tiles / (bus_width / 64))`` words,
        so the bus must be at least 64 bits; and a row's beats are ``ceil(cols / tiles)``, a
        shift, when ``tiles`` is a power of two and ``col_block`` a multiple of it."""
        tiles = self.array.tiles
        return (self.bus_width >= PARTIAL_SUM_BITS and tiles & (tiles - 1) == 0
                and self.array.col_block % tiles == 0)

    @property
    def sum_words_per_beat(self) -> int:
        """Memory words of one result beat's partial sums (with :attr:`partial_sums`)."""
        return beat_sum_words(self.array.tiles, self.bus_width)

    @property
    def row_block_bits(self) -> int:
        """Bits of backward-weight's row-block buffer."""
        vec = self.array.vec
        return 2 * vec * self.row_block_chunks * vec * (self.array.data_width + 1)

    @property
    def buffer_bits(self) -> int:
        """Bits of the core's on-chip memories: the X scratchpad, the row-block buffer and
        the tile array's buffers."""
        return self.x_words * self.bus_width + self.row_block_bits + self.array.buffer_bits

    def check_generatable(self) -> None:
        """Raise ``ValueError`` unless the core of this configuration can be generated: the
        tile array's limit (:meth:`Config.check_generatable`), and the X scratchpad with the
        tile array's buffers within :data:`GENERATABLE_BUFFER_BITS`."""
        self.array.check_generatable()
        if self.buffer_bits > GENERATABLE_BUFFER_BITS:
            raise ValueError(f"x_words = {self.x_words} words of {self.bus_width} bits and the "
                             f"tile array's buffers hold {self.buffer_bits:,} bits, more than "
                             f"the {GENERATABLE_BUFFER_BITS:,} (2**22) that generation is "
                             f"limited to: lower x_words, y_words (max_cols x max_chunks by "
                             f"default) or max_chunks")


#: The core's default: the core with :data:`CORE_ARRAY`.
CORE_DEFAULT = CoreConfig()
#: The core sized to fit the ECP5 LFE5U-85F of docs/fpga.md: :data:`CORE_ARRAY` with 32
#: columns per pass and a Y buffer of 2048 words instead of 8192 (block RAM limits the core
#: there, not logic). Its Y buffer holds a whole memory word of columns (16) only for
#: reductions of at most 128 chunks: 235 of the five networks' 296 passes.
FPGA_CORE = CoreConfig(Config(max_cols=32, max_chunks=512, y_words=2048))
