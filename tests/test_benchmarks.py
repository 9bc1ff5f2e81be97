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
    from benchmarks.cheb_layer import SPEEDUP_TARGET

    assert layer["target"] == SPEEDUP_TARGET.to_dict() and layer["target"]["n_vertices"] == COMA_VERTICES


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


def _judgement(minutes, recipe=None, errors=(0.3, 0.14), fraction=None):
    from benchmarks import time_to_quality as ttq

    threshold = (fraction or ttq.FRACTION) * 0.13
    return {
        "generated_by": "python -m benchmarks.time_to_quality", "commit": "0123456789abcdef",
        "command": "facelab train ...", "budget_minutes": ttq.BUDGET_MINUTES,
        "recipe": recipe or {"identities": ttq.IDENTITIES, "epochs": ttq.EPOCHS, "threads": ttq.THREADS,
                             "recognizer_warmup": ttq.RECOGNIZER_WARMUP, "alignment": ttq.ALIGNMENT,
                             "mixture_blends": ttq.BLENDS},
        "threshold": {"fraction": fraction or ttq.FRACTION, "threshold_mm": threshold, "source": "x"},
        "reference": {"bundled_model_mm": 0.13, "do_nothing_mm": 1.4, "linear_mm": 0.33},
        "machine": {"load_average_before": [0.1, 0.1, 0.1]}, "command_s": 700.0, "preparation_s": 100.0,
        "stages": [{"after_s": 1.0, "line": "loading data ..."}],
        "checkpoints": [{"epoch": k + 1, "after_s": 300.0 * (k + 1), "validation_error_mm": e, "test_error_mm": e}
                        for k, e in enumerate(errors)],
        "minutes": minutes,
    }


def test_time_to_quality_reaches_at_the_first_checkpoint_within_the_threshold():
    from benchmarks.time_to_quality import first_reaching

    checkpoints = [{"after_s": 600.0, "test_error_mm": 0.15}, {"after_s": 300.0, "test_error_mm": 0.16},
                   {"after_s": 100.0, "test_error_mm": 0.5}]
    assert first_reaching(checkpoints, 0.16)["after_s"] == 300.0     # the earliest, whatever the list order
    assert first_reaching(checkpoints, 0.155)["after_s"] == 600.0
    assert first_reaching(checkpoints, 0.1) is None


def test_time_to_quality_threshold_is_read_from_the_bundled_models_results(tmp_path):
    from benchmarks.time_to_quality import bundled_reference

    path = tmp_path / "bundled_model.json"
    path.write_text(json.dumps({"evaluation": {"mean_error_mm": 0.2, "baselines": {
        "do_nothing": {"mean_error_mm": 1.5}, "linear": {"mean_error_mm": 0.4}}}}))
    assert bundled_reference(path) == {"bundled_model_mm": 0.2, "do_nothing_mm": 1.5, "linear_mm": 0.4}


def test_the_suite_reports_the_committed_time_to_quality_judgement(tmp_path):
    from benchmarks.report import markdown
    from benchmarks.time_to_quality import committed_result

    path = tmp_path / "time_to_quality.json"
    assert committed_result(path).met is None and "not judged" in committed_result(path).notes  # no file yet
    path.write_text(json.dumps(_judgement(minutes=10.0)))
    reached = committed_result(path)
    assert reached.value == 10.0 and reached.met is True and "0123456789ab" in reached.notes  # its commit
    path.write_text(json.dumps(_judgement(minutes=None, errors=(0.3, 0.25))))
    assert committed_result(path).met is False  # judged over the full budget and not reached
    path.write_text(json.dumps(_judgement(minutes=4.0, recipe={"identities": 7, "epochs": 1, "threads": 2})))
    other = committed_result(path)
    assert other.value is None and other.met is None and "NOT the judged recipe" in other.notes
    # A judgement of the recipe in another frame (train's default alignment) is not this recipe's.
    recipe = {**_judgement(minutes=4.0)["recipe"], "alignment": "auto"}
    path.write_text(json.dumps(_judgement(minutes=4.0, recipe=recipe)))
    assert "NOT the judged recipe" in committed_result(path).notes
    # Nor is a judgement of the recipe before its mixture learned blends.
    recipe = {k: v for k, v in _judgement(minutes=4.0)["recipe"].items() if k != "mixture_blends"}
    path.write_text(json.dumps(_judgement(minutes=4.0, recipe=recipe)))
    assert "NOT the judged recipe" in committed_result(path).notes
    document = {"machine": {}, "settings": {}, "results": [reached.to_dict()]}
    page = markdown(document)
    assert "### Time to quality" in page and "loading data ..." in page and "| 2 | 10.00 |" in page


def test_time_to_quality_judgement_runs_the_command_end_to_end(tmp_path):
    # The judgement's own code at a tiny size: a fresh cache, the real `facelab train` and
    # `facelab evaluate`, the checkpoint kept at the epoch's end.
    out = tmp_path / "ttq.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.time_to_quality", "--identities", "12", "--epochs", "1", "--minutes", "10",
         "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["recipe"] == {"identities": 12, "epochs": 1, "threads": 2, "recognizer_warmup": 12800,
                                  "alignment": "similarity", "mixture_blends": 2}
    assert "--identities 12" in document["command"] and "--fusion-mixture" in document["command"]
    assert "--mixture-blends 2" in document["command"]
    assert "--alignment similarity" in document["command"]
    assert document["commit"] and document["generated_by"].startswith("python -m benchmarks.time_to_quality")
    # The start (saved as best before the first step), then the epoch's last.
    start, trained = document["checkpoints"]
    assert (start["epoch"], trained["epoch"]) == (0, 1) and start["after_s"] < trained["after_s"]
    for checkpoint in (start, trained):
        assert 0 < checkpoint["test_error_mm"] < document["reference"]["do_nothing_mm"] * 5
    assert 0 < document["preparation_s"] < trained["after_s"] <= document["command_s"]
    lines = [stage["line"] for stage in document["stages"]]
    assert any(line.startswith("loading data") for line in lines)
    assert any(line.startswith("epoch 1/1") for line in lines)
    assert document["threshold"]["threshold_mm"] == pytest.approx(
        document["threshold"]["fraction"] * document["reference"]["bundled_model_mm"])
    reached = min(c["test_error_mm"] for c in (start, trained)) <= document["threshold"]["threshold_mm"]
    assert (document["minutes"] is not None) == reached


def test_training_memory_reports_a_missing_synthfaces_cache_without_generating_it(tmp_path, monkeypatch):
    from benchmarks.training_memory import _synthfaces_row

    monkeypatch.setenv("FACELAB_CACHE_DIR", str(tmp_path))  # the child inherits it: an empty cache
    row = _synthfaces_row(identities=7, steps=1)
    assert row.value is None and row.met is None and "not measured" in row.notes
    assert not list(tmp_path.rglob("*.npy"))  # nothing was generated


def test_memory_parts_of_a_live_process_add_up_to_its_resident_set():
    from benchmarks.training_memory import _memory_parts, _status_mb

    parts = _memory_parts(os.getpid())
    rss = _status_mb("VmRSS")
    assert parts["own_mb"] > 0 and parts["file_mb"] > 0
    assert parts["own_mb"] + parts["file_mb"] == pytest.approx(rss, rel=0.1)
