"""Speed of MeshChebConv against PyG's ChebConv: the suite's ``cheb_layer`` benchmark on chosen meshes.

Kept for its command line; the measurement itself lives in ``benchmarks/cheb_layer.py``.

    python -m benchmarks.cheb_conv_speed                      # 5,023 vertices
    python -m benchmarks.cheb_conv_speed --sizes 5023 26317 --threads 1 2 --quick
"""

from __future__ import annotations

import argparse

import torch

from benchmarks import cheb_layer
from benchmarks.options import Options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["5023"], help="vertex counts or 'template'")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes = tuple(size if size == "template" else int(size) for size in args.sizes)
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"torch threads: {threads}")
        for result in cheb_layer.run(Options(quick=args.quick, sizes=sizes)):
            print(f"  {result.name:28s} n={result.n_vertices:6d}  {result.value:.3g} {result.unit}  {result.notes}")


if __name__ == "__main__":
    main()
