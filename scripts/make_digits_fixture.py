#!/usr/bin/env python3
"""Regenerate the digits-CNN fixture (+ .json): real ReLU masks from a small digits CNN.

Trains the "plain" (conv -> ReLU) and "batchnorm" (conv -> BatchNorm -> ReLU) variants of the
network in maskprop.workloads.digits on scikit-learn's bundled 8x8 digits, captures A, W, Z, dZ, dA, dW
of one training step on 2 images per conv layer, quantizes them to 16-bit fixed point and writes
the fixture. Deterministic: the same settings on the same machine give a byte-identical file.

The fixture is package data of maskprop.workloads; this script writes (or, with --check, compares
with) the copy in this repository's source tree, maskprop/workloads/data/digits_cnn.npz, whatever
maskprop the interpreter imports (an editable install reads that copy; an installed wheel has its
own).

    .venv/bin/python scripts/make_digits_fixture.py            # write the committed fixture
    .venv/bin/python scripts/make_digits_fixture.py --check    # regenerate, compare, write nothing

Needs PyTorch and scikit-learn: pip install -e '.[torch,data]'.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from maskprop.workloads.digits import TrainSettings, fixture_from_arrays, make_fixture, save_fixture

#: The committed fixture in the source tree (the package data maskprop.workloads.digits.FIXTURE_PATH
#: resolves to in an editable install).
SOURCE_FIXTURE = (Path(__file__).resolve().parent.parent
                  / "maskprop" / "workloads" / "data" / "digits_cnn.npz")


def _report(fixture) -> None:
    for name, variant in fixture.variants.items():
        print(f"\n{name}: test accuracy {variant.test_accuracy:.4f}")
        print(f"  {'layer':6} {'shape (N,C,H,W)->(N,K,Ho,Wo)':32} {'dens A':>7} {'dens dZ':>8}"
              f"  frac_bits A/W/Z/dZ/dA/dW")
        for r in variant.layers:
            shapes = f"{r.layer.input_shape}->{r.layer.output_shape}"
            fb = "/".join(str(r.frac_bits[t]) for t in ("A", "W", "Z", "dZ", "dA", "dW"))
            print(f"  {r.name:6} {shapes:32} {r.density_A:7.3f} {r.density_dZ:8.3f}  {fb}")
        h = variant.history
        print(f"  density history (probe batch, after n updates): steps {h.steps}")
        for layer in h.density_A:
            a = " ".join(f"{v:.3f}" for v in h.density_A[layer])
            dz = " ".join(f"{v:.3f}" for v in h.density_dZ[layer])
            print(f"    {layer:6} A: {a}\n    {'':6} dZ: {dz}")


def main(argv=None) -> int:
    defaults = TrainSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SOURCE_FIXTURE,
                        help="output .npz path (default: the committed fixture, %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--check", action="store_true",
                        help="regenerate and compare with --out byte for byte; write nothing")
    args = parser.parse_args(argv)

    settings = TrainSettings(seed=args.seed, steps=args.steps)
    t0 = time.perf_counter()
    arrays, metadata = make_fixture(settings, verbose=True)
    fixture = fixture_from_arrays(arrays, metadata)
    _report(fixture)

    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = save_fixture(arrays, metadata, Path(tmp) / args.out.name)
            same = (args.out.is_file() and fresh.read_bytes() == args.out.read_bytes()
                    and fresh.with_suffix(".json").read_text()
                    == args.out.with_suffix(".json").read_text())
        if not same and args.out.is_file():
            with np.load(args.out, allow_pickle=False) as old:
                differing = sorted(k for k in arrays if k not in old.files
                                   or not np.array_equal(old[k], arrays[k]))
            print(f"\n{len(differing)} arrays differ: {differing[:10]}")
        print(f"\n{args.out}: {'identical' if same else 'DIFFERENT'} "
              f"({time.perf_counter() - t0:.1f} s)")
        return 0 if same else 1

    path = save_fixture(arrays, metadata, args.out)
    print(f"\nwrote {path} ({path.stat().st_size / 1024:.1f} KiB) and "
          f"{path.with_suffix('.json').name} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
