// The simulated board: hw/board_top.py's Verilog on Verilator, its UART bridged to this
// process's standard streams. Bytes read from stdin go onto the board's rx line as 8N1
// characters at the board's divisor (cycles per bit), back to back; characters the board sends
// on tx are decoded (sampled in the middle of each bit) and written to stdout at once.
//
// The clock runs while the board has something to do: a byte on its way in or out, or the
// host link busy with a request (receiving, executing, RUN waiting for the core, answering).
// When the link is idle and nothing is on the lines, the process sleeps in poll() until the
// host writes; it exits when stdin closes and the board is idle. On exit it prints the cycles
// simulated to stderr.
//
// Usage: simulated_board DIVISOR
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "Vboard_top.h"
#include "verilated.h"

namespace {

// The board's receive line: bytes waiting, and the character on the line.
struct LineDriver {
    std::deque<uint8_t> waiting;
    int bit = -1;           // bit of the character on the line (0 start .. 9 stop), -1: idle
    int cycles_left = 0;    // of that bit
    uint16_t character = 0;

    int next(int divisor) {
        if (bit < 0) {
            if (waiting.empty()) return 1;
            // start bit 0, data LSB first, stop bit 1
            character = static_cast<uint16_t>((waiting.front() << 1) | (1 << 9));
            waiting.pop_front();
            bit = 0;
            cycles_left = divisor;
        }
        int level = (character >> bit) & 1;
        if (--cycles_left == 0) {
            cycles_left = divisor;
            if (++bit == 10) bit = -1;
        }
        return level;
    }
    bool idle() const { return bit < 0 && waiting.empty(); }
};

// The board's transmit line, decoded.
struct LineReceiver {
    int bit = -1;           // -1: idle; 0 start .. 9 stop
    int count = 0;          // cycles until the next sample
    unsigned value = 0;

    // Returns the byte when a character's stop bit has been sampled, else -1.
    int sample(int level, int divisor) {
        if (bit < 0) {
            if (level == 0) {
                bit = 0;
                count = divisor / 2;
            }
            return -1;
        }
        if (--count > 0) return -1;
        count = divisor;
        if (bit == 0) {
            if (level != 0) bit = -1;     // a glitch, not a start bit
            else bit = 1;
            return -1;
        }
        if (bit <= 8) {
            value |= static_cast<unsigned>(level) << (bit - 1);
            ++bit;
            return -1;
        }
        int result = level ? static_cast<int>(value & 0xFF) : -2;   // -2: framing error
        bit = -1;
        value = 0;
        return result;
    }
    bool idle() const { return bit < 0; }
};

void write_all(int fd, const uint8_t* data, size_t size) {
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("simulated_board: write");
            std::exit(1);
        }
        data += n;
        size -= static_cast<size_t>(n);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s DIVISOR\n", argv[0]);
        return 2;
    }
    const int divisor = std::atoi(argv[1]);
    if (divisor < 4) {
        std::fprintf(stderr, "simulated_board: DIVISOR must be at least 4, not %s\n", argv[1]);
        return 2;
    }
    Verilated::commandArgs(1, argv);
    Vboard_top top;
    LineDriver rx;
    LineReceiver tx;
    uint64_t cycle = 0;
    bool input_open = true;

    auto step = [&]() {
        top.rx = rx.next(divisor);
        top.clk = 0;
        top.eval();
        top.clk = 1;
        top.eval();
        ++cycle;
        int byte = tx.sample(top.tx, divisor);
        if (byte >= 0) {
            uint8_t out = static_cast<uint8_t>(byte);
            write_all(1, &out, 1);
        } else if (byte == -2) {
            std::fprintf(stderr, "simulated_board: framing error on tx at cycle %llu\n",
                         static_cast<unsigned long long>(cycle));
        }
    };

    top.rst = 1;
    for (int k = 0; k < 4; ++k) step();
    top.rst = 0;
    for (int k = 0; k < 4; ++k) step();

    uint8_t buffer[65536];
    while (true) {
        bool quiet = top.link_idle && rx.idle() && tx.idle();
        if (quiet && !input_open) break;
        // Look for input: blocking while the board is quiet, else every 256 cycles.
        if (input_open && (quiet || (cycle & 0xFF) == 0)) {
            struct pollfd fds = {0, POLLIN, 0};
            int ready = poll(&fds, 1, quiet ? -1 : 0);
            if (ready < 0 && errno != EINTR) {
                std::perror("simulated_board: poll");
                return 1;
            }
            if (ready > 0) {
                ssize_t n = read(0, buffer, sizeof buffer);
                if (n > 0) rx.waiting.insert(rx.waiting.end(), buffer, buffer + n);
                else if (n == 0 || errno != EINTR) input_open = false;
            }
            if (quiet && rx.idle()) continue;
        }
        step();
    }
    std::fprintf(stderr, "simulated_board: %llu cycles\n",
                 static_cast<unsigned long long>(cycle));
    top.final();
    return 0;
}
