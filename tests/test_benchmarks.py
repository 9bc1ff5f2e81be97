"""The benchmark suite's own parts: the meshes it runs on, the timing arithmetic, and one end-to-end run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.meshes import (
    COMA_VERTICES,
    FACESCAPE_VERTICES,
    generated_face,
    manifold_problems,
    mean_neighbours,
    synthfaces_template,
)
from benchmarks.results import Result, Target
from benchmarks.timing import Timing, speedup, time_alternating
from tests.conftest import REPO


@pytest.mark.parametrize("n_vertices", [COMA_VERTICES, FACESCAPE_VERTICES, 9, 10, 13, 200, 201])
def test_generated_faces_have_the_exact_count_and_are_manifold(n_vertices):
    mesh = generated_face(n_vertices)
    assert mesh.n_vertices == n_vertices and mesh.vertices.shape == (n_vertices, 3)
    assert mesh.triangles.min() >= 0 and mesh.triangles.max() < n_vertices
    assert manifold_problems(mesh.triangles, n_vertices) == []
    if n_vertices >= 5000:
        assert 5.8 <= mean_neighbours(mesh.triangles, n_vertices) <= 6.0  # ~6, as on registered faces


def test_the_template_is_manifold():
    mesh = synthfaces_template()
    assert manifold_problems(mesh.triangles, mesh.n_vertices) == []


def test_manifold_check_finds_the_problems():
    fan = np.array([[0, 1, 2], [0, 2, 3]])
    assert manifold_problems(fan, 4) == []
    assert any("orientation" in p for p in manifold_problems(np.array([[0, 1, 2], [0, 1, 3]]), 4))
    assert any("more than two" in p for p in manifold_problems(np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]]), 5))
    assert any("no triangle" in p for p in manifold_problems(fan, 5))
    bowtie = np.array([[0, 1, 2], [0, 3, 4]])  # two triangles sharing only vertex 0
    assert any("pinched" in p for p in manifold_problems(bowtie, 5))


def test_timing_alternates_and_summarises_with_a_controlled_clock():
    now = [0.0]
    calls = []

    def clock():
        return now[0]

    def side(name, seconds):
        def run():
            calls.append(name)
            now[0] += seconds.pop(0)
        return run

    ours = side("ours", [9.0, 0.001, 0.002, 0.003, 0.004, 0.005])      # first one is the warm-up
    reference = side("ref", [9.0, 0.010, 0.020, 0.030, 0.040, 0.050])
    timings = time_alternating({"ours": ours, "reference": reference}, warmup=1, repeats=5, clock=clock)
    assert calls == ["ours", "ref"] * 6                                  # alternating, warm-up first
    assert timings["ours"].samples_ms == pytest.approx((1, 2, 3, 4, 5))  # the warm-up is not timed
    assert timings["ours"].median_ms == pytest.approx(3.0)
    assert timings["ours"].quartiles_ms == pytest.approx((2.0, 4.0))
    assert timings["ours"].spread_ms == pytest.approx(2.0)
    assert speedup(timings["ours"], timings["reference"]) == pytest.approx(10.0)
    summary = timings["reference"].to_dict()
    assert summary["median_ms"] == pytest.approx(30.0) and summary["min_ms"] == pytest.approx(10.0)
    assert summary["max_ms"] == pytest.approx(50.0) and summary["repeats"] == 5


def test_targets_are_judged_only_at_their_size():
    target = Target(">= 8x", ">=", 8.0, n_vertices=5023)
    timing = Timing((1.0,))
    assert Result("x", "cpu", 9.0, "x", timing, target=target, n_vertices=5023).met is True
    assert Result("x", "cpu", 7.0, "x", timing, target=target, n_vertices=5023).met is False
    assert Result("x", "cpu", 7.0, "x", timing, target=target, n_vertices=4239).met is None
    assert Result("x", "cpu", 9.0, "x", timing, target=target, n_vertices=5023, met_override=False).met is False
    assert "short" in target.shortfall(4.0) and target.shortfall(9.0) == ""


def test_one_benchmark_runs_end_to_end_and_writes_the_documented_json(tmp_path):
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "cheb_layer", "--quick", "--device", "cpu",
         "--sizes", "120", "--json", str(out)],
        # One thread: on a busy machine a second OpenMP thread waits for a core at every op.
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == 0, completed.stderr
    document = json.loads(out.read_text())
    assert {"cpu", "cores", "torch", "devices"} <= set(document["machine"])
    names = [r["name"] for r in document["results"]]
    assert names == ["cheb_layer.forward", "cheb_layer.forward_backward", "cheb_layer.gflops"]
    for result in document["results"]:
        assert {"name", "device", "mesh", "n_vertices", "params", "ours", "reference", "ratio", "value", "unit",
                "target", "met", "extra", "notes"} <= set(result)
        assert result["n_vertices"] == 120 and result["met"] is None  # targets are set at 5,023
        assert {"median_ms", "spread_ms", "repeats"} <= set(result["ours"])
    layer = document["results"][1]
    assert layer["ratio"] == pytest.approx(layer["reference"]["median_ms"] / layer["ours"]["median_ms"])
    assert max(layer["extra"]["relative_difference"].values()) <= 1e-5
    assert layer["target"]["threshold"] == 8.0 and layer["target"]["n_vertices"] == COMA_VERTICES


def test_the_large_mesh_memory_script_runs_the_trainers_step():
    # scripts/large_mesh_memory.py (docs/scale-out.md#memory) drives the Trainer's public set-up
    # and step; at a small size it must still run and report what the table shows.
    completed = subprocess.run([sys.executable, str(REPO / "scripts" / "large_mesh_memory.py"), "--vertices", "815",
                                "--steps", "2", "--batch", "2", "--only", "paper"],
                               capture_output=True, text=True, cwd=REPO, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    measured = json.loads(completed.stdout.splitlines()[0])
    assert measured["vertices"] == 815 and measured["steps"] == 2
    assert measured["peak_rss_mb"] >= measured["peak_rss_before_training_mb"] >= measured["baseline_rss_mb"] > 0
    assert measured["step_seconds_after_first"] > 0
