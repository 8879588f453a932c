"""What the measuring scripts share: what those that time themselves (``bench_sim_speed.py``,
``bench_cycle_model.py``) write besides their text (the machine they ran on, whose load their
wall times depend on, and their ``--json`` file), and the ``--network`` option of those that
walk networks' passes. A script imports it as ``bench_output`` (its own directory is first on
``sys.path``)."""

import json
import os
from pathlib import Path

__all__ = ["machine", "write_json", "add_network_option", "network_names"]


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


def add_network_option(parser, default: list) -> None:
    """``--network NAME`` (repeatable): ``digits`` or a network of ``maskprop eval``;
    ``default`` when none is given (see :func:`network_names`)."""
    parser.add_argument("--network", action="append", default=None,
                        help=f"digits or a network of maskprop eval (repeatable; default: "
                             f"{', '.join(default)})")
    parser.set_defaults(network_default=list(default))


def network_names(parser, args) -> list:
    """The ``--network`` names given (else the default), each checked: a usage error from
    ``parser`` names the unknown ones."""
    from maskprop.workloads.networks import NETWORK_NAMES

    names = args.network or args.network_default
    unknown = [name for name in names if name != "digits" and name not in NETWORK_NAMES]
    if unknown:
        parser.error(f"--network must be digits or one of {', '.join(NETWORK_NAMES)}, not "
                     f"{', '.join(unknown)}")
    return names
