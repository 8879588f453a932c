#!/usr/bin/env python3
"""How ReLU sparsity evolves while the digits CNN trains: per-layer density (fraction nonzero) of
each conv layer's input activation A and output gradient dZ, from the committed fixture's
training history (probe batch of 64 images). Prints a Markdown table.

    .venv/bin/python scripts/digits_sparsity.py [--variant plain|batchnorm]
"""

import argparse

from maskprop.workloads.digits import conv_layers
from maskprop.workloads.profiles import digits_density_history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=("plain", "batchnorm"), default="plain")
    args = parser.parse_args(argv)
    history = digits_density_history(args.variant)
    names = [layer.name for layer in conv_layers()]
    print(f"digits CNN ({args.variant}), test accuracy {history.test_accuracy:.3f} after "
          f"{history.steps[-1]} steps; density of A / dZ per layer (probe batch of "
          f"{history.batch})\n")
    print("| step | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for index, step in enumerate(history.steps):
        cells = [f"{history.A[name][index]:.2f} / {history.dZ[name][index]:.2f}"
                 for name in names]
        print(f"| {step} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
