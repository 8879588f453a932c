#!/usr/bin/env bash
# Run the whole test suite: golden model (with PyTorch and finite differences), Amaranth simulator
# tests, cocotb testbenches on Verilator (and the Icarus smoke test), lint, and the FPGA flow.
# Sets everything up first (scripts/setup.sh is quick when nothing is missing).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not fpga"` or `-k tree`.
# SIM=icarus runs the cocotb testbenches on Icarus instead; MASKPROP_SEED=N repeats a random run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONWARNINGS=error
exec .venv/bin/python -m pytest -n "${MASKPROP_JOBS:-2}" --durations=10 "$@"
