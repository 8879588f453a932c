"""pytest plugin of scripts/mutants.py: ``-p mutant_plugin`` (with scripts/ on ``PYTHONPATH``)
installs the import hook for the mutant named by ``MASKPROP_MUTANT`` before any test module
imports the RTL, so that the whole session, and the Verilog it generates, sees the mutant."""

import os

import mutants

MUTANT = mutants.install(os.environ[mutants.ENV_MUTANT])


def pytest_report_header(config):
    return f"RTL mutant: {MUTANT.name} ({MUTANT.module}: {MUTANT.bug})"
