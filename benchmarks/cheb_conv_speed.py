"""Speed of MeshChebConv against PyG's ChebConv on a static batched graph.

Both layers hold the same weights and the same scaled Laplacian (the outputs are checked to agree
before timing) and run in the same process, alternating, so that drifts of the machine's speed
hit both alike. Timed: the forward pass (under ``no_grad``) and forward + backward (gradients for
the input and all weights). Prints median and spread (min, max) per thread count, and the ratio
of medians PyG / ours.

    python benchmarks/cheb_conv_speed.py                    # n = 10,242 (icosphere 5), B = 16, 16 -> 16, K = 6
    python benchmarks/cheb_conv_speed.py --threads 1 2 --repeats 15
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import trimesh

from facelab.mesh import scaled_laplacian
from facelab.nn.cheb_conv import MeshChebConv, PygChebConv, adapt_cheb_state_dict


def _forward(layer: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            layer(x)

    return run


def _forward_backward(layer: torch.nn.Module, x: torch.Tensor, probe: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        (layer(x) * probe).sum().backward()

    return run


def _time_alternating(runs: dict[str, Callable[[], None]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each run, interleaved call by call after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def _summary(samples: list[float]) -> str:
    median, low, high = (1e3 * statistics.median(samples), 1e3 * min(samples), 1e3 * max(samples))
    return f"median {median:8.1f} ms  (min {low:7.1f}, max {high:7.1f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subdivisions", type=int, default=5, help="icosphere subdivisions (5: 10,242 vertices)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--in-channels", type=int, default=16)
    parser.add_argument("--out-channels", type=int, default=16)
    parser.add_argument("--K", type=int, default=6)
    parser.add_argument("--laplacian", choices=("combinatorial", "normalized"), default="combinatorial")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    args = parser.parse_args(argv)

    sphere = trimesh.creation.icosphere(subdivisions=args.subdivisions)
    n_vertices = len(sphere.vertices)
    laplacian = scaled_laplacian(sphere.faces, n_vertices, args.laplacian)
    torch.manual_seed(0)
    ours = MeshChebConv(args.in_channels, args.out_channels, args.K, laplacian)
    torch.nn.init.normal_(ours.bias)
    pyg = PygChebConv(args.in_channels, args.out_channels, args.K, laplacian)
    pyg.load_state_dict(adapt_cheb_state_dict(ours.state_dict(), pyg))
    x = torch.randn(args.batch, n_vertices, args.in_channels, requires_grad=True)
    probe = torch.randn(args.batch, n_vertices, args.out_channels)
    with torch.no_grad():
        expected, got = pyg(x), ours(x)
    error = float((got - expected).norm() / expected.norm())

    print(
        f"n = {n_vertices}, B = {args.batch}, {args.in_channels} -> {args.out_channels}, K = {args.K}, "
        f"{args.laplacian} Laplacian; relative difference of outputs {error:.1e}"
    )
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\ntorch threads: {torch.get_num_threads()}")
        for label, make in (
            ("forward", lambda layer: _forward(layer, x)),
            ("forward+backward", lambda layer: _forward_backward(layer, x, probe)),
        ):
            seconds = _time_alternating({"pyg": make(pyg), "ours": make(ours)}, args.warmup, args.repeats)
            ratio = statistics.median(seconds["pyg"]) / statistics.median(seconds["ours"])
            print(f"  {label:17s} PyG  {_summary(seconds['pyg'])}")
            print(f"  {label:17s} ours {_summary(seconds['ours'])}")
            print(f"  {label:17s} PyG / ours = {ratio:.1f}x")


if __name__ == "__main__":
    main()
