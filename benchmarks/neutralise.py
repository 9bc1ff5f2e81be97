"""Inference: neutralising one mesh (latency) and a batch of 64 (throughput).

Results ``neutralise.single`` and ``neutralise.batch64``: :meth:`FaceLabModel.neutralise` from
millimetre vertices in a numpy array to millimetre vertices out (normalisation, Enc, G, Dec and
the copy back included), as the CLI and the app call it. On the SynthFaces template it is the
bundled model; on the generated meshes, a ``full`` model of the same architecture with untrained
weights (inference costs the same whatever the weights).
"""

from __future__ import annotations

import numpy as np

from benchmarks.meshes import BenchmarkMesh
from benchmarks.options import Options
from benchmarks.paired_data import random_model
from benchmarks.results import Result, Target
from benchmarks.timing import time_one
from benchmarks.torch_device import synchronizer

BATCH = 64
LATENCY_TARGET = Target("<= 5 ms median for one 5,023-vertex mesh on 2 cores", "<=", 5.0)


def model_for(mesh: BenchmarkMesh, device: str):
    """The bundled model where it fits the mesh, else an untrained one of the same architecture."""
    from facelab.model import FaceLabModel

    try:
        bundled = FaceLabModel.bundled(device=device)
        if bundled.n_vertices == mesh.n_vertices and np.array_equal(bundled.triangles, mesh.triangles):
            return bundled, "bundled model"
    except Exception:  # a missing or outdated bundled model: time the architecture instead
        pass
    return random_model(mesh, device), "untrained full model"


def run(options: Options) -> list[Result]:
    results = []
    for device in options.devices:
        sync = synchronizer(device)
        for mesh in options.meshes():
            model, which = model_for(mesh, device)
            rng = np.random.default_rng(0)
            faces = (mesh.vertices[None] + rng.normal(scale=1.0, size=(BATCH, mesh.n_vertices, 3))).astype(np.float32)
            single = time_one(lambda: model.neutralise(faces[0]), options.warmup(3), options.repeats(30), sync)
            batch = time_one(lambda: model.neutralise(faces), options.warmup(1),
                             options.repeats(max(3, round(8 * min(1.0, 5_023 / mesh.n_vertices)))), sync)
            meshes_per_s = BATCH / (batch.median_ms / 1e3)
            common = dict(device=device, mesh=mesh.name, n_vertices=mesh.n_vertices)
            results.append(Result(name="neutralise.single", value=single.median_ms, unit="ms", ours=single,
                                  target=LATENCY_TARGET, params={"batch": 1, "model": which},
                                  notes=f"{which}; {1e3 / single.median_ms:.0f} meshes/s one at a time", **common))
            results.append(Result(name="neutralise.batch64", value=meshes_per_s, unit="meshes/s", ours=batch,
                                  params={"batch": BATCH, "model": which}, extra={"meshes_per_s": meshes_per_s},
                                  notes=f"{which}; {batch.median_ms:.0f} ms per batch of {BATCH}", **common))
    return results
