"""What the benchmark scripts that time themselves (``bench_sim_speed.py``,
``bench_cycle_model.py``) write besides their text: the machine they ran on, whose load their
wall times depend on, and their ``--json`` file. A script imports it as ``bench_output`` (its
own directory is first on ``sys.path``)."""

import json
import os
from pathlib import Path

__all__ = ["machine", "write_json"]


def machine() -> dict:
    """The CPUs and the load averages now: a wall time means little without them on a shared
    machine."""
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_1min": load[0], "load_5min": load[1],
            "load_15min": load[2]}


def write_json(path: Path, payload: dict) -> None:
    """``payload`` as indented JSON (ending in a newline) at ``path``, its directory made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
