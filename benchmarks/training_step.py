"""One training step of the ``full`` variant, facelab's layer against the same network on PyG's ChebConv.

Result ``training_step``: pairs per second at batch 16, both branches (expressive and neutral
through the encoder and decoder), the discriminator's step included, the batch fetched and
normalised from the in-memory dataset included: the trainer's own step, on both sides, with the
same data order and seed; only ``TrainConfig.conv`` differs.
"""

from __future__ import annotations

import tempfile

from benchmarks.options import Options
from benchmarks.paired_data import paired_dataset, ready_trainer, trainer_step, training_config
from benchmarks.results import Result, Target
from benchmarks.timing import speedup, time_alternating
from benchmarks.torch_device import synchronizer

BATCH = 16
TARGET = Target(">= 12x more pairs/s than the same network on PyG's ChebConv at 5,023 vertices", ">=", 12.0)


def run(options: Options) -> list[Result]:
    results = []
    for device in options.devices:
        for mesh in options.meshes():
            dataset = paired_dataset(mesh)
            with tempfile.TemporaryDirectory() as tmp:
                trainers = {conv: ready_trainer(dataset, training_config(conv, BATCH, device=device), tmp)
                            for conv in ("fast", "pyg")}
                steps = {"ours": trainer_step(trainers["fast"]), "reference": trainer_step(trainers["pyg"])}
                full = max(3, round(5 * min(1.0, 5_023 / mesh.n_vertices)))  # PyG: seconds a step
                timings = time_alternating(steps, 1, options.repeats(full), synchronizer(device))
            ratio = speedup(timings["ours"], timings["reference"])
            pairs_per_s = {side: BATCH / (timing.median_ms / 1e3) for side, timing in timings.items()}
            results.append(Result(
                name="training_step", device=device, value=ratio, unit="x pairs/s", ours=timings["ours"],
                reference=timings["reference"], ratio=ratio, target=TARGET, mesh=mesh.name,
                n_vertices=mesh.n_vertices, params={"variant": "full", "batch": BATCH},
                extra={"pairs_per_s": pairs_per_s},
                notes=f"ours {pairs_per_s['ours']:.1f} pairs/s, PyG {pairs_per_s['reference']:.1f} pairs/s",
            ))
    return results
