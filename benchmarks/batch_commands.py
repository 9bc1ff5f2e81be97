"""Whole folders: ``facelab neutralize DATA --out DIR`` and ``facelab identify`` end to end.

Results (CPU, at the sizes up to 5,023 vertices; the targets are judged at 5,023):

* ``batch.neutralise_folder``: meshes per second for a folder of PLY files on local disk read,
  predicted and written by :func:`facelab.batch.neutralise_meshes` (report included), beside the
  model alone on the same meshes already in memory (``model_meshes_per_s``), both after a
  warm-up run, alternately, medians of ``FOLDER_REPEATS``. Target: at least 100 meshes/s, and the
  model alone at most 1.5 times faster (the disk kept off the critical path).
* ``batch.render_folder``: figures per second for :func:`facelab.batch.render_meshes` of a folder
  of ``RENDER_MESHES`` PLY files, half of them expressive and half their subjects' neutral faces,
  so that every figure has its ground truth (three panels at scale 1: input, prediction coloured by
  its error, ground truth), after a warm-up call on a few meshes (the first figure builds the
  off-screen renderer). Target: at least 5 figures/s.
* ``batch.identify``: seconds for :func:`facelab.batch.identify` of a folder of 1,000 probe files
  against a gallery folder of 1,000 subjects' neutral faces (both read from disk, embedded and
  ranked). Target: at most 20 s.

The meshes are the benchmark mesh with small random offsets; the model is the bundled one where
it fits, else an untrained model of the same architecture (inference costs the same).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.neutralise import model_for
from benchmarks.options import Options
from benchmarks.results import Result, Target

FOLDER_MESHES = 512
FOLDER_REPEATS = 3
IDENTIFY_SUBJECTS = 1000
RENDER_MESHES, RENDER_WARMUP = 48, 4
MAX_VERTICES = 10_000  # file I/O at 26,317 vertices adds minutes and judges nothing
FOLDER_TARGET = Target(">= 100 meshes/s end to end for 5,023-vertex PLY files, within 1.5x of the model alone",
                       ">=", 100.0)
RENDER_TARGET = Target(">= 5 figures/s at scale 1 (three 480 x 540 panels) for 5,023-vertex PLY files", ">=", 5.0)
IDENTIFY_TARGET = Target("<= 20 s for 1,000 probe files against a 1,000-subject gallery", "<=", 20.0)


def _write_folder(folder: Path, vertices: np.ndarray, triangles: np.ndarray, expressions: list[str],
                  subjects: list[str] | None = None) -> None:
    from facelab.data.dataset import FaceDataset, MeshRecord
    from facelab.data.layouts.generic import write_generic

    subjects = subjects or [f"s{i:04d}" for i in range(len(expressions))]
    records = [MeshRecord(subject, expression) for subject, expression in zip(subjects, expressions)]
    write_generic(FaceDataset(folder.name, "generic", vertices, triangles, records), folder, "ply", progress=False)


def _faces(mesh, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (mesh.vertices[None] + rng.normal(scale=1.0, size=(count, mesh.n_vertices, 3))).astype(np.float32)


def run(options: Options) -> list[Result]:
    from facelab.batch import WRITTEN, identify, list_meshes, neutralise_meshes

    results = []
    folder_meshes = 64 if options.quick else FOLDER_MESHES
    subjects = 100 if options.quick else IDENTIFY_SUBJECTS
    for mesh in options.meshes():
        if mesh.n_vertices > MAX_VERTICES:
            continue
        model, which = model_for(mesh, "cpu")
        common = dict(device="cpu", mesh=mesh.name, n_vertices=mesh.n_vertices)
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            faces = _faces(mesh, folder_meshes, seed=0)
            _write_folder(scratch / "expressive", faces, mesh.triangles, ["smile"] * folder_meshes)
            source = list_meshes(scratch / "expressive", progress=False)
            # The folder and the model alone alternately, the first round a warm-up (the first
            # batches allocate); the medians of the others are compared.
            folder_times, model_times = [], []
            for repeat in range(options.repeats(FOLDER_REPEATS) + 1):
                started = time.perf_counter()
                report = neutralise_meshes(model, source, scratch / f"out{repeat}", progress=False)
                folder_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                model.neutralise(faces)
                model_times.append(time.perf_counter() - started)
            folder_s, model_s = statistics.median(folder_times[1:]), statistics.median(model_times[1:])
            folder_rate, model_rate = folder_meshes / folder_s, folder_meshes / model_s
            ratio = model_rate / folder_rate
            results.append(Result(
                name="batch.neutralise_folder", value=folder_rate, unit="meshes/s",
                ours={"seconds": folder_s, "meshes": folder_meshes, "written": report.count(WRITTEN)},
                target=FOLDER_TARGET, met_override=ratio <= 1.5, params={"meshes": folder_meshes, "model": which},
                extra={"model_meshes_per_s": model_rate, "model_over_folder": ratio},
                notes=f"{which}; the model alone {model_rate:.0f} meshes/s ({ratio:.2f}x the folder)", **common))

            results.append(_render_result(model, which, mesh, scratch, 8 if options.quick else RENDER_MESHES, common))

            _write_folder(scratch / "gallery", _faces(mesh, subjects, seed=1), mesh.triangles, ["neutral"] * subjects)
            _write_folder(scratch / "probes", _faces(mesh, subjects, seed=2), mesh.triangles, ["smile"] * subjects)
            started = time.perf_counter()
            ranked = identify(model, scratch / "probes", scratch / "gallery", k=5, progress=False)
            identify_s = time.perf_counter() - started
            results.append(Result(
                name="batch.identify", value=identify_s, unit="s",
                ours={"seconds": identify_s, "probes": len(ranked["probes"]), "gallery_subjects": ranked["gallery_subjects"]},
                target=IDENTIFY_TARGET if subjects == IDENTIFY_SUBJECTS else None,
                params={"probes": subjects, "gallery_subjects": subjects, "model": which},
                notes=f"{which}; probe and gallery files read from disk", **common))
    return results


def _render_result(model, which: str, mesh, scratch: Path, count: int, common: dict) -> Result:
    """``batch.render_folder``: a folder of subjects' expressive and neutral meshes, the dataset's
    pairs giving every figure its ground truth (three panels)."""
    from facelab.batch import list_meshes, render_meshes

    def folder(name: str, meshes: int, seed: int):
        subjects = [f"s{i // 2:04d}" for i in range(meshes)]
        _write_folder(scratch / name, _faces(mesh, meshes, seed), mesh.triangles,
                      ["neutral", "smile"] * (meshes // 2), subjects)
        return list_meshes(scratch / name, progress=False)

    render_meshes(model, folder("figures-warmup", RENDER_WARMUP, seed=3), scratch / "figures-warmup-out",
                  progress=False)
    source = folder("figures-in", count, seed=4)
    started = time.perf_counter()
    report = render_meshes(model, source, scratch / "figures-out", progress=False)
    seconds = time.perf_counter() - started
    rate = len(report.written) / seconds
    return Result(name="batch.render_folder", value=rate, unit="figures/s",
                  ours={"seconds": seconds, "figures": len(report.written), "skipped": len(report.skipped)},
                  target=RENDER_TARGET if count == RENDER_MESHES else None,
                  params={"figures": count, "scale": 1.0, "model": which, "with_truth": source.has_truth},
                  notes=f"{which}; read, predicted, drawn off screen and written as PNG", **common)
