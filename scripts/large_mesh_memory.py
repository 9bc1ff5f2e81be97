"""Peak memory and step time of training at FaceScape's size (26,317 vertices), batch 16.

For each architecture (the paper's, and CoMA-style downsampling 4,4,4,4) a fresh subprocess
builds a synthetic dataset on a generated 26,317-vertex template (a curved grid, face-sized, in
mm), sets up the real :class:`~facelab.training.Trainer` and runs a few of its training steps
(discriminator update, then the network's). Peak memory is ``torch.cuda.max_memory_allocated``
on a GPU, and the process's peak resident set (``VmHWM``) on a CPU, which includes Python,
torch and the data (the ``baseline`` column is the peak before the network is built).

    python scripts/large_mesh_memory.py --device cpu --steps 3
    python scripts/large_mesh_memory.py --device cuda --steps 10 --amp bf16 --json memory.json
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_VERTICES = 26_317  # FaceScape's registered topology
ARCHITECTURES = {"paper": [], "downsample 4,4,4,4": [4, 4, 4, 4]}


def face_like_template(n_vertices: int = N_VERTICES, columns: int = 163):
    """A curved grid of exactly ``n_vertices`` vertices (rows of ``columns``, the last one partial)."""
    import numpy as np

    index = np.arange(n_vertices)
    col, row = index % columns, index // columns
    x = (col - columns / 2) * 1.2                    # ~200 mm wide
    y = (row - row.max() / 2) * 1.5                  # ~240 mm tall
    z = np.sqrt(np.maximum(150.0**2 - 0.6 * x**2 - 0.4 * y**2, 0.0))
    vertices = np.stack([x, y, z], axis=1).astype(np.float32)
    triangles = []
    for r in range(row.max()):
        for c in range(columns - 1):
            a, b, d, e = r * columns + c, r * columns + c + 1, (r + 1) * columns + c, (r + 1) * columns + c + 1
            if e < n_vertices:
                triangles += [(a, b, e), (a, e, d)]
    return vertices, np.asarray(triangles, dtype=np.int64)


def synthetic_dataset(subjects: int = 24, expressions: int = 4, n_vertices: int = N_VERTICES):
    import numpy as np

    from facelab.data import FaceDataset, MeshRecord

    template, triangles = face_like_template(n_vertices)
    rng = np.random.default_rng(0)
    records, meshes = [], []
    for s in range(subjects):
        identity = template * (1 + 0.05 * rng.normal(size=3)).astype(np.float32)
        records.append(MeshRecord(f"s{s:03d}", "neutral"))
        meshes.append(identity)
        for e in range(expressions):
            bump = 5.0 * np.exp(-((template[:, 1] + 40 * (e - 1.5)) / 30.0) ** 2)
            records.append(MeshRecord(f"s{s:03d}", f"e{e}"))
            meshes.append(identity + bump[:, None].astype(np.float32) * np.array([0, 0.3, 1], np.float32))
    return FaceDataset("large synthetic", "generic", np.asarray(meshes, np.float32), triangles, records)


def _peak_rss_mb() -> float:
    """This process's peak resident set so far (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    import resource

    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(architecture: str, device: str, steps: int, amp: str, batch: int, n_vertices: int = N_VERTICES) -> dict:
    """Runs in the subprocess: set up the trainer, run ``steps`` training steps, report."""
    import torch

    from facelab.training import TrainConfig, Trainer

    dataset = synthetic_dataset(n_vertices=n_vertices)
    baseline_mb = _peak_rss_mb()
    config = TrainConfig(data="synthetic", epochs=1, batch_size=batch, seed=0, tensorboard=False, preview_every=0,
                         device=device, amp=amp, downsample=ARCHITECTURES[architecture], alignment="similarity")
    scratch = tempfile.mkdtemp(prefix="facelab-memory-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    trainer = Trainer(config, scratch, dataset=dataset)
    trainer.prepare()            # data split, network (with its linear start where it applies), optimisers
    trainer.network.train()
    prepared_peak_mb = _peak_rss_mb()
    parameters = sum(p.numel() for p in trainer.network.parameters())
    dense = trainer.network.encoder.to_latent.weight.numel()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    batches = trainer.train_batches
    for step in range(steps):
        started = time.perf_counter()
        trainer.train_step(*batches.batch(*divmod(step, batches.steps_per_epoch)))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    result = {
        "architecture": architecture, "device": device, "amp": amp, "batch": batch, "steps": steps,
        "vertices": dataset.n_vertices, "coarsest_vertices": trainer.network.decoder.coarsest_vertices,
        "parameters": parameters, "encoder_fc_weights": dense,
        "step_seconds_after_first": (sum(times[1:]) / max(len(times) - 1, 1)) if len(times) > 1 else times[0],
        "first_step_seconds": times[0], "threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name()
    result["peak_rss_mb"] = _peak_rss_mb()
    result["peak_rss_before_training_mb"] = prepared_peak_mb
    result["baseline_rss_mb"] = baseline_mb
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--amp", default="off", choices=("off", "bf16"))
    parser.add_argument("--only", choices=tuple(ARCHITECTURES), default=None)
    parser.add_argument("--vertices", type=int, default=N_VERTICES, help=f"template size (default {N_VERTICES:,})")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here, with their provenance")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.vertices < 2 * 163:  # face_like_template's rows of 163: two make the first triangles
        parser.error(f"--vertices must be at least {2 * 163} (two rows of the template's grid)")
    if args.child:  # one measurement per process, so that each peak is its own
        from facelab.cpu_memory import keep_freed_memory

        keep_freed_memory()  # what a facelab training process does
        print(json.dumps(measure(args.child, args.device, args.steps, args.amp, args.batch, args.vertices)))
        return
    from facelab.provenance import provenance

    stamp = provenance("python scripts/large_mesh_memory.py")
    results = []
    for architecture in ([args.only] if args.only else ARCHITECTURES):
        command = [sys.executable, __file__, "--child", architecture, "--device", args.device, "--steps",
                   str(args.steps), "--amp", args.amp, "--batch", str(args.batch), "--vertices", str(args.vertices)]
        output = subprocess.run(command, check=True, capture_output=True, text=True, env=dict(os.environ)).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print("\n| architecture | device | amp | parameters | encoder FC weights | peak memory (MB) | step (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        peak = r.get("peak_gpu_mb", r["peak_rss_mb"])
        kind = "GPU allocated" if "peak_gpu_mb" in r else f"RSS, baseline {r['baseline_rss_mb']:.0f}"
        print(f"| {r['architecture']} | {r['device']} | {r['amp']} | {r['parameters']:,} | {r['encoder_fc_weights']:,} "
              f"| {peak:,.0f} ({kind}) | {r['step_seconds_after_first']:.2f} |")
    if args.json:
        from facelab.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps({**stamp, "results": results}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
