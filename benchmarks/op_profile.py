"""Where the time goes: torch.profiler's top operators of the training step, the Chebyshev layer and
the neutralisation of one mesh.

Results ``profile.training_step``, ``profile.cheb_layer`` and ``profile.neutralise`` (no target):
the operators with the most self CPU time over a few steps of the ``full`` variant (batch 16), a
few forward + backward passes of the layer (B = 16, 16 -> 16, K = 6), and a few calls of
:meth:`FaceLabModel.neutralise` on one mesh (as ``neutralise.single`` times it), on the
5,023-vertex mesh (or the first size asked for).
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.meshes import COMA_VERTICES, benchmark_meshes
from benchmarks.options import Options
from benchmarks.results import Result

TOP = 12


def top_operators(prof, count: int = TOP) -> list[dict]:
    """The ``count`` operators with the most self CPU time: name, calls, ms and share of the total."""
    events = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3,
             "share": e.self_cpu_time_total / total} for e in events[:count]]


def _profiled(run, repeats: int) -> list[dict]:
    run()  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            run()
    return top_operators(prof)


def run(options: Options) -> list[Result]:
    from benchmarks.cheb_layer import BATCH, IN_CHANNELS, OUT_CHANNELS, forward_backward, layers
    from benchmarks.neutralise import model_for
    from benchmarks.paired_data import paired_dataset, ready_trainer, trainer_step, training_config

    sizes = [size for size in options.sizes if size == COMA_VERTICES] or list(options.sizes[:1])
    mesh = benchmark_meshes(tuple(sizes))[0]
    repeats = 2 if options.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        trainer = ready_trainer(paired_dataset(mesh), training_config("fast"), tmp)
        step_ops = _profiled(trainer_step(trainer), repeats)
    ours, _ = layers(mesh, "cpu")
    x = torch.randn(BATCH, mesh.n_vertices, IN_CHANNELS, requires_grad=True)
    probe = torch.randn(BATCH, mesh.n_vertices, OUT_CHANNELS)
    layer_ops = _profiled(forward_backward(ours, x, probe), repeats)
    model, which = model_for(mesh, "cpu")
    face = np.asarray(mesh.vertices, dtype=np.float32)
    single_repeats = 4 * repeats
    single_ops = _profiled(lambda: model.neutralise(face), single_repeats)
    common = dict(device="cpu", value=None, unit="", mesh=mesh.name, n_vertices=mesh.n_vertices)
    return [
        Result(name="profile.training_step", ours={"top_ops": step_ops, "repeats": repeats},
               params={"variant": "full", "batch": 16}, **common),
        Result(name="profile.cheb_layer", ours={"top_ops": layer_ops, "repeats": repeats},
               params={"batch": BATCH, "in_channels": IN_CHANNELS, "out_channels": OUT_CHANNELS, "K": 6}, **common),
        Result(name="profile.neutralise", ours={"top_ops": single_ops, "repeats": single_repeats},
               params={"batch": 1, "model": which}, **common),
    ]
