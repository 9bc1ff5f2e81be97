"""The Chebyshev layer against PyG's ChebConv, and its dense part's GFLOP/s against the memory roofline.

Results ``cheb_layer.forward``, ``cheb_layer.forward_backward`` and ``cheb_layer.gflops`` (see
``benchmarks/__init__.py``). Both layers hold the same weights (a non-zero bias too) and the same
scaled Laplacian; PyG sees the batch as one static graph of B disjoint copies of the mesh, as its
DataLoader would build it (the batched ``edge_index`` is built once, outside the timing). Before
timing, the outputs and the gradients of the input, weights and bias are compared: they must agree
to a relative 1e-5. Forward runs under ``no_grad``; forward + backward computes every gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchmarks.meshes import BenchmarkMesh
from benchmarks.options import Options
from benchmarks.results import Result, Target
from benchmarks.timing import speedup, time_alternating
from benchmarks.torch_device import synchronizer

BATCH, IN_CHANNELS, OUT_CHANNELS, K = 16, 16, 16, 6
AGREEMENT = 1e-5
SPEEDUP_TARGET = Target(">= 15x faster forward + backward than PyG at 5,023 vertices, same numbers to 1e-5", ">=",
                        15.0)


def layers(mesh: BenchmarkMesh, device: str, in_channels: int = IN_CHANNELS, out_channels: int = OUT_CHANNELS,
           k: int = K):
    """(ours, PyG's) on the mesh's combinatorial scaled Laplacian, with the same random weights."""
    from facelab.mesh import scaled_laplacian
    from facelab.nn.cheb_conv import MeshChebConv, PygChebConv, adapt_cheb_state_dict

    laplacian = scaled_laplacian(mesh.triangles, mesh.n_vertices, "combinatorial")
    torch.manual_seed(0)
    ours = MeshChebConv(in_channels, out_channels, k, laplacian)
    torch.nn.init.normal_(ours.bias)  # a zero bias would hide a bias that is never added
    reference = PygChebConv(in_channels, out_channels, k, laplacian)
    reference.load_state_dict(adapt_cheb_state_dict(ours.state_dict(), reference))
    return ours.to(device), reference.to(device)


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).detach().norm() / expected.detach().norm())


def agreement(ours, reference, x: torch.Tensor, probe: torch.Tensor) -> dict[str, float]:
    """Relative differences of outputs (with and without autograd) and of the gradients of input, weights, bias."""
    got = ours(x)
    got_grads = torch.autograd.grad((got * probe).sum(), [x, ours.weight, ours.bias])
    expected = reference(x)
    lins = [lin.weight for lin in reference.conv.lins]
    expected_grads = torch.autograd.grad((expected * probe).sum(), [x, *lins, reference.conv.bias])
    expected_weight = torch.stack([grad.T for grad in expected_grads[1:-1]])
    with torch.no_grad():  # inference takes its own path through the layer
        got_without_grad = ours(x)
    return {
        "output": _relative(got, expected),
        "output_without_grad": _relative(got_without_grad, expected),
        "grad_input": _relative(got_grads[0], expected_grads[0]),
        "grad_weight": _relative(got_grads[1], expected_weight),
        "grad_bias": _relative(got_grads[2], expected_grads[-1]),
    }


def forward_only(layer: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            layer(x)

    return run


def forward_backward(layer: torch.nn.Module, x: torch.Tensor, probe: torch.Tensor) -> Callable[[], None]:
    """One forward and the full backward: gradients of the input and every parameter."""

    def run() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        (layer(x) * probe).sum().backward()

    return run


def layer_flops(n_vertices: int, nnz: int, batch: int, in_channels: int, out_channels: int, k: int) -> dict[str, int]:
    """Floating-point operations of one forward: the sparse recursion and the dense weighting.

    The recursion runs on the narrower side (``min(in, out)`` channels, see
    :mod:`facelab.nn.chebyshev_sum`): K - 1 sparse products and K - 2 subtractions of its width.
    """
    columns = batch * min(in_channels, out_channels)
    sparse = 2 * nnz * columns * (k - 1) + 2 * n_vertices * columns * max(k - 2, 0)  # L T, then 2 (.) - T
    dense = 2 * n_vertices * batch * k * in_channels * out_channels
    return {"sparse": sparse, "dense": dense, "total": sparse + dense}


def dense_part_bytes(n_vertices: int, batch: int, in_channels: int, out_channels: int, k: int) -> int:
    """Bytes the dense part must move at least (float32): read the K terms once and write the
    output once; each mesh's (n, out) sum stays in cache while its K products accumulate."""
    return 4 * n_vertices * batch * (k * in_channels + out_channels)


def dense_part(terms: list[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The layer's dense work on given Chebyshev terms (K of (B, n, in)): ``sum_k T_k W_k + b``.

    Mesh by mesh, the K products accumulated into the mesh's output while it is in cache (as the
    layer's groups of meshes do), then the bias.
    """
    batch, n_vertices, _ = terms[0].shape
    out = terms[0].new_empty(batch, n_vertices, weight.shape[2])
    for b in range(batch):
        torch.mm(terms[0][b], weight[0], out=out[b])
        for term, weight_k in zip(terms[1:], weight[1:]):
            out[b].addmm_(term[b], weight_k)
        out[b].add_(bias)
    return out


def chebyshev_terms(x: torch.Tensor, laplacian: torch.Tensor, k: int) -> list[torch.Tensor]:
    """``T_0(L) x, ..., T_{k-1}(L) x`` for x (B, n, F), each (B, n, F) contiguous."""
    batch, n_vertices, channels = x.shape
    rows = x.transpose(0, 1).reshape(n_vertices, batch * channels)
    terms = [rows]
    if k > 1:
        terms.append(torch.mm(laplacian, rows))
    for _ in range(2, k):
        terms.append(2 * torch.mm(laplacian, terms[-1]) - terms[-2])
    return [term.view(n_vertices, batch, channels).transpose(0, 1).contiguous() for term in terms]


def _repeats(options: Options, mesh: BenchmarkMesh, full: int) -> int:
    """Fewer repetitions on big meshes, where PyG takes seconds per call."""
    return options.repeats(max(3, round(full * min(1.0, 5_023 / mesh.n_vertices))))


def run(options: Options) -> list[Result]:
    results = []
    for device in options.devices:
        sync = synchronizer(device)
        for mesh in options.meshes():
            results += _speed(options, mesh, device, sync)
            results.append(_gflops(options, mesh, device, sync))
    return results


def _speed(options: Options, mesh: BenchmarkMesh, device: str, sync) -> list[Result]:
    ours, reference = layers(mesh, device)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, mesh.n_vertices, IN_CHANNELS, generator=generator).to(device).requires_grad_()
    probe = torch.randn(BATCH, mesh.n_vertices, OUT_CHANNELS, generator=generator).to(device)
    differences = agreement(ours, reference, x, probe)
    worst = max(differences.values())
    params = {"batch": BATCH, "in_channels": IN_CHANNELS, "out_channels": OUT_CHANNELS, "K": K,
              "laplacian": "combinatorial"}
    repeats, warmup = _repeats(options, mesh, 10), options.warmup()
    results = []
    for name, make in (("cheb_layer.forward", lambda layer: forward_only(layer, x)),
                       ("cheb_layer.forward_backward", lambda layer: forward_backward(layer, x, probe))):
        timings = time_alternating({"ours": make(ours), "reference": make(reference)}, warmup, repeats, sync)
        ratio = speedup(timings["ours"], timings["reference"])
        is_target = name == "cheb_layer.forward_backward"
        results.append(Result(
            name=name, device=device, value=ratio, unit="x faster", ours=timings["ours"],
            reference=timings["reference"], ratio=ratio, target=SPEEDUP_TARGET if is_target else None,
            mesh=mesh.name, n_vertices=mesh.n_vertices, params=params,
            extra={"relative_difference": differences, "agrees_to": AGREEMENT},
            met_override=worst <= AGREEMENT,
            notes=f"reference: torch_geometric.nn.ChebConv on a static batched graph; "
                  f"largest relative difference {worst:.1e}",
        ))
    return results


def _gflops(options: Options, mesh: BenchmarkMesh, device: str, sync) -> Result:
    """The layer's GFLOP/s, and its dense part's against the memory roofline (reported).

    The dense part's products have an inner dimension of 16: they do ~7 flop per byte they must
    move, so they are bound by memory traffic, not arithmetic, and the measure of how well they
    run is the roofline, that intensity times the copy bandwidth measured in the same run (capped
    by a square dense matmul's GFLOP/s, also measured). The dense part is timed alone on the
    layer's own terms, the way the layer does it (:func:`dense_part`), alternating with the
    layer's forward, the matmul and the copy.
    """
    ours, _ = layers(mesh, device)
    x = torch.randn(BATCH, mesh.n_vertices, IN_CHANNELS).to(device)
    flops = layer_flops(mesh.n_vertices, int(ours.laplacian_values.numel()), BATCH, IN_CHANNELS, OUT_CHANNELS, K)
    side = 1024 if options.quick else 2048
    a, b = torch.randn(side, side, device=device), torch.randn(side, side, device=device)
    stream_source = torch.randn(16 * 2**20, device=device)  # 64 MB, beyond the caches
    stream_target = torch.empty_like(stream_source)
    with torch.no_grad():
        terms = chebyshev_terms(x, ours.laplacian, K)
        repeats, warmup = options.repeats(15), options.warmup()
        timings = time_alternating({
            "layer": forward_only(ours, x),
            "dense": lambda: dense_part(terms, ours.weight, ours.bias),
            "peak": lambda: torch.mm(a, b),
            "copy": lambda: stream_target.copy_(stream_source),
        }, warmup, repeats, sync)
    gflops = {
        "layer_forward": flops["total"] / timings["layer"].median_ms / 1e6,
        "dense_part": flops["dense"] / timings["dense"].median_ms / 1e6,
        "peak_dense_matmul": 2 * side**3 / timings["peak"].median_ms / 1e6,
    }
    bandwidth_gb_s = 2 * stream_source.numel() * 4 / timings["copy"].median_ms / 1e6
    intensity = flops["dense"] / dense_part_bytes(mesh.n_vertices, BATCH, IN_CHANNELS, OUT_CHANNELS, K)
    roofline = min(gflops["peak_dense_matmul"], intensity * bandwidth_gb_s)
    fraction = gflops["dense_part"] / roofline
    return Result(
        name="cheb_layer.gflops", device=device, value=fraction, unit="of roofline", ours=timings["dense"],
        reference=timings["copy"], ratio=fraction, target=None, mesh=mesh.name, n_vertices=mesh.n_vertices,
        params={"batch": BATCH, "in_channels": IN_CHANNELS, "out_channels": OUT_CHANNELS, "K": K,
                "peak_matmul": f"{side}x{side} @ {side}x{side} float32", "copy": "64 MB float32"},
        extra={"gflops": gflops, "flops": flops, "layer_forward": timings["layer"].to_dict(),
               "peak_dense_matmul": timings["peak"].to_dict(),
               "copy_bandwidth_gb_s": bandwidth_gb_s, "dense_part_flops_per_byte": intensity,
               "dense_part_roofline_gflops": roofline, "roofline_of_peak": roofline / gflops["peak_dense_matmul"],
               "dense_part_of_peak": gflops["dense_part"] / gflops["peak_dense_matmul"]},
        notes=f"layer forward {gflops['layer_forward']:.1f} GFLOP/s; dense part {gflops['dense_part']:.1f} GFLOP/s "
              f"= {fraction:.0%} of its memory roofline ({intensity:.1f} flop/byte x {bandwidth_gb_s:.1f} GB/s "
              f"copy bandwidth = {roofline:.1f} GFLOP/s); a square dense matmul: "
              f"{gflops['peak_dense_matmul']:.1f} GFLOP/s",
    )
