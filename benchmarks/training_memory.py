"""Peak resident memory of training, measured in a child process so the parent's own memory stays out.

Result ``training_memory``: the child imports facelab, builds the data and the trainer, runs N
steps of the ``full`` variant at batch 16 and reports its peak resident set (``VmHWM``: its whole
life, imports and data included) and its resident size just before the first step.

The peak is read from ``/proc/self/status`` rather than ``getrusage``'s ``ru_maxrss``: Linux keeps
``ru_maxrss`` across ``exec``, so a child forked from a big parent starts with the parent's peak
(the suite's own process holds PyG's training at 26,317 vertices, several GB). ``VmHWM`` belongs
to the child's own address space, created at ``exec``. ``ru_maxrss`` is reported alongside.

    python -m benchmarks.training_memory --child N_VERTICES STEPS   # what the parent runs
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.options import Options
from benchmarks.results import Result, Target

BATCH = 16
TARGET = Target("<= 2 GB peak resident memory of training at 5,023 vertices, batch 16", "<=", 2048.0)
REPO = Path(__file__).resolve().parents[1]


def _status_mb(field: str) -> float:
    """A memory line of /proc/self/status (``VmRSS``: now, ``VmHWM``: peak), MB."""
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(size: str, steps: int) -> dict:
    """Run in the child: train ``steps`` steps on the mesh of ``size``; returns the measurements."""
    import resource
    import tempfile

    from benchmarks.meshes import benchmark_meshes
    from benchmarks.paired_data import paired_dataset, ready_trainer, trainer_step, training_config

    mesh = benchmark_meshes((size if size == "template" else int(size),))[0]
    dataset = paired_dataset(mesh)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = ready_trainer(dataset, training_config("fast", BATCH), tmp)
        before = _status_mb("VmRSS")
        step = trainer_step(trainer)
        for _ in range(steps):
            step()
    ru_maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {"mesh": mesh.name, "n_vertices": mesh.n_vertices, "peak_rss_mb": _status_mb("VmHWM"),
            "ru_maxrss_mb": ru_maxrss_kb / 1024,
            "rss_before_training_mb": before, "steps": steps, "dataset_mb": dataset.vertices.nbytes / 2**20}


def run(options: Options) -> list[Result]:
    results = []
    steps = 3 if options.quick else 10
    for mesh_size in options.sizes:
        completed = subprocess.run([sys.executable, "-m", "benchmarks.training_memory", "--child", str(mesh_size),
                                    str(steps)], capture_output=True, text=True, cwd=REPO, timeout=1800)
        if completed.returncode != 0:
            raise RuntimeError(f"the training-memory child failed:\n{completed.stderr[-2000:]}")
        measured = json.loads(completed.stdout.strip().splitlines()[-1])
        results.append(Result(
            name="training_memory", device="cpu", value=measured["peak_rss_mb"], unit="MB", ours=measured,
            target=TARGET, mesh=measured["mesh"], n_vertices=measured["n_vertices"],
            params={"variant": "full", "batch": BATCH, "steps": steps},
            notes=f"peak RSS of a child process over {steps} steps (imports and data included); "
                  f"{measured['rss_before_training_mb']:.0f} MB before the first step",
        ))
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        from facelab.nn.cpu_memory import keep_freed_memory

        keep_freed_memory()  # what a facelab training process does
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
    else:
        raise SystemExit("usage: python -m benchmarks.training_memory --child N_VERTICES|template STEPS")
