"""Two facelab processes on the same cores: how much slower each neutralises than alone.

Result ``neutralise.shared_cores`` (CPU, at 5,023 vertices): one child process times batches of
64 meshes (as ``facelab neutralize`` on a folder runs them) alone, then two children time them
at once, started together; ``value`` is the shared median over the alone median. Two processes of 2 threads each on 2 cores: 2x is a fair share. The
reference is the same with libgomp's default spin (``GOMP_SPINCOUNT=300000``, what facelab ran
with before :mod:`facelab.openmp`), where the waiting threads spin through the other process's
time slices.

    python -m benchmarks --only shared_cores --json /tmp/shared.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.options import Options
from benchmarks.results import TARGET_VERTICES, Result, Target

BATCH = 64
TARGET = Target("<= 3x slower than alone while a second facelab process neutralises on the same cores (2 cores "
                "shared: 2x is a fair share)", "<=", 3.0)
LIBGOMP_DEFAULT_SPIN = "300000"


def child(n_vertices: int, repeats: int) -> list[float]:
    """Milliseconds per batch, after a warm-up: says "ready" and waits for a line on stdin first,
    so that the parent starts every child's timing at once."""
    import facelab  # noqa: F401  (first: its OpenMP setting applies only where facelab comes before torch)

    del facelab
    import numpy as np

    from benchmarks.meshes import benchmark_meshes
    from benchmarks.neutralise import model_for

    mesh = benchmark_meshes([n_vertices])[0]
    model, _ = model_for(mesh, "cpu")
    faces = (mesh.vertices[None] + np.random.default_rng(0).normal(size=(BATCH, n_vertices, 3))).astype(np.float32)
    model.neutralise(faces)
    print("ready", flush=True)
    sys.stdin.readline()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.neutralise(faces)
        samples.append(1e3 * (time.perf_counter() - started))
    return samples


def _children(count: int, n_vertices: int, repeats: int, spin: str | None) -> list[float]:
    """Every batch time of ``count`` children timed at once."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("GOMP_SPINCOUNT", None)
    if spin is not None:
        env["GOMP_SPINCOUNT"] = spin
    command = [sys.executable, "-m", "benchmarks.shared_cores", "--child", str(n_vertices), str(repeats)]
    processes = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                 for _ in range(count)]
    for process in processes:                   # every child has imported torch and warmed up
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("a shared_cores child failed before it was ready")
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    samples = []
    for process in processes:
        output, _ = process.communicate(timeout=900)
        if process.returncode != 0:
            raise RuntimeError(f"a shared_cores child failed ({process.returncode})")
        samples += json.loads(output.strip().splitlines()[-1])
    return samples


def run(options: Options) -> list[Result]:
    if "cpu" not in options.devices:
        return []
    n_vertices = next((m.n_vertices for m in options.meshes() if m.n_vertices == TARGET_VERTICES), None)
    n_vertices = n_vertices or options.meshes()[0].n_vertices
    repeats = options.repeats(3)
    alone = statistics.median(_children(1, n_vertices, repeats, None))
    shared = statistics.median(_children(2, n_vertices, repeats, None))
    default_alone = statistics.median(_children(1, n_vertices, repeats, LIBGOMP_DEFAULT_SPIN))
    default_shared = statistics.median(_children(2, n_vertices, repeats, LIBGOMP_DEFAULT_SPIN))
    ratio, default_ratio = shared / alone, default_shared / default_alone
    return [Result(
        name="neutralise.shared_cores", device="cpu", value=ratio, unit="x slower than alone",
        ours={"alone_ms": alone, "shared_ms": shared}, reference={"alone_ms": default_alone, "shared_ms": default_shared},
        ratio=default_ratio / ratio, target=TARGET, n_vertices=n_vertices, mesh=f"{n_vertices:,} vertices",
        params={"batch": BATCH, "repeats": repeats, "processes": 2},
        notes=f"a batch of {BATCH}: {alone:.0f} ms alone, {shared:.0f} ms with a second process at once; with "
              f"libgomp's default spin {default_alone:.0f} and {default_shared:.0f} ms ({default_ratio:.1f}x)")]


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        raise SystemExit(__doc__)
