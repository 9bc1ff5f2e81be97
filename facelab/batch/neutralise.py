"""Neutralise every mesh of a folder or dataset into an output folder, with a CSV report."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facelab.atomic import atomic_write_text
from facelab.batch.sources import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_WORKERS,
    LoadedMesh,
    MeshInput,
    MeshSource,
    check_generated,
    loaded_chunks,
    log_above_bar,
    warn_skipped,
)
from facelab.errors import FacelabError
from facelab.evaluation.metrics import per_vertex_error
from facelab.mesh.face_mesh import FaceMesh
from facelab.mesh.io import write_mesh

log = logging.getLogger(__name__)

#: The report ``facelab neutralize DATA --out DIR`` writes into DIR.
REPORT_NAME = "neutralize.csv"

#: Mesh formats a batch can write (the input's own format by default).
OUTPUT_FORMATS = ("ply", "obj", "off")

# A row's status in the report.
WRITTEN = "written"   # predicted and written by this run
KEPT = "kept"         # the output existed already (an earlier run) and was left as it was
SKIPPED = "skipped"   # could not be done; the reason says why

REPORT_COLUMNS = ("input", "output", "status", "subject", "expression", "top1_subject", "top1_probability",
                  "read_expression", "read_expression_probability", "error_mm", "reason")
_CARRIED_COLUMNS = ("top1_subject", "top1_probability", "read_expression", "read_expression_probability", "error_mm")
#: Columns only a model with the expression mixture fills.
_READING_COLUMNS = ("read_expression", "read_expression_probability")


@dataclass
class NeutraliseReport:
    """What :func:`neutralise_meshes` did: one row per input (see :data:`REPORT_COLUMNS`).

    Attributes:
        out: the output folder.
        rows: dicts keyed by the report's columns, in the inputs' order.
        columns: the report's columns (``error_mm`` only when some ground truth is known).
        interrupted: the run was stopped (Ctrl-C) before every input was done.
    """

    out: Path
    rows: list[dict]
    columns: tuple[str, ...]
    interrupted: bool = False

    @property
    def path(self) -> Path:
        return self.out / REPORT_NAME

    def count(self, status: str) -> int:
        return sum(row["status"] == status for row in self.rows)

    @property
    def nothing_done(self) -> bool:
        """No mesh was written now or kept from before: nothing could be done."""
        return self.count(WRITTEN) + self.count(KEPT) == 0

    @property
    def skipped(self) -> list[dict]:
        return [row for row in self.rows if row["status"] == SKIPPED]

    def mean_error_mm(self) -> float | None:
        """The mean of ``error_mm`` over the rows that have one (written or kept), or None."""
        errors = [float(row["error_mm"]) for row in self.rows if row.get("error_mm") not in (None, "")]
        return float(np.mean(errors)) if errors else None

    def summary(self) -> dict:
        """What ``facelab neutralize DATA --json`` prints."""
        return {
            "output": str(self.out),
            "report": str(self.path),
            "written": self.count(WRITTEN),
            "kept": self.count(KEPT),
            "skipped": [{"input": row["input"], "reason": row["reason"]} for row in self.skipped],
            "mean_error_mm": self.mean_error_mm(),
            "interrupted": self.interrupted,
        }


def output_paths(source: MeshSource, out: Path, fmt: str | None) -> list[Path]:
    """Each input's output under ``out``: its relative path with ``fmt``'s suffix (or its own);
    names that would collide (``a.obj`` and ``a.ply`` written as PLY) get ``_2``, ``_3``..."""
    taken: set[str] = set()
    paths = []
    for item in source.inputs:
        relative = item.relative_output
        suffix = f".{fmt}" if fmt else (relative.suffix.lower() or ".ply")
        candidate, copy = relative.with_suffix(suffix), 1
        while candidate.as_posix().lower() in taken:  # case-insensitive file systems merge names
            copy += 1
            candidate = relative.with_name(f"{relative.stem}_{copy}{suffix}")
        taken.add(candidate.as_posix().lower())
        paths.append(out / candidate)
    return paths


def _previous_rows(report: Path) -> dict[str, dict]:
    """The rows of an earlier run's report, by output (relative to its folder); {} if none."""
    try:
        rows = csv.DictReader(io.StringIO(report.read_text(encoding="utf-8")))
        return {row["output"]: row for row in rows if row.get("output") and row.get("status") in (WRITTEN, KEPT)}
    except (OSError, UnicodeDecodeError, KeyError, csv.Error):
        return {}


def _check_output_folder(source: MeshSource, out: Path, outputs: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise FacelabError(f"{out} is a file: expected a folder to write the neutralised meshes into.")
    inputs = {item.path.resolve() for item in source.inputs if item.path is not None}
    clash = next((path for path in outputs if path.resolve() in inputs), None)
    if clash is not None:
        raise FacelabError(f"writing into {out} would replace the input {clash}: expected an output folder "
                           "outside the meshes read.")


def _write_prediction(path: Path, vertices: np.ndarray, triangles: np.ndarray, error: np.ndarray | None,
                      unit_scale: float) -> None:
    """One predicted mesh, in the input's units; a PLY carries the per-vertex error (mm) when known."""
    scalars = {"error": error} if error is not None and path.suffix.lower() == ".ply" else None
    write_mesh(FaceMesh(vertices / unit_scale, triangles, name=str(path)), path, vertex_scalars=scalars)


def neutralise_meshes(model, source: MeshSource, out: str | os.PathLike, fmt: str | None = None,
                      overwrite: bool = False, batch_size: int = DEFAULT_BATCH_SIZE, workers: int = DEFAULT_WORKERS,
                      progress: bool = True) -> NeutraliseReport:
    """Predict the neutral face of every mesh of ``source`` and write it under ``out``.

    Outputs mirror the input's layout (its relative paths; ``subject/[group/]expression`` for
    generated data) in the input's format and units unless ``fmt`` says otherwise. Meshes are
    read and written on ``workers`` background threads while the model predicts ``batch_size``
    of them at a time. ``out/neutralize.csv`` (atomically, at the end, and on Ctrl-C with the rows
    done so far) holds a row per input: input, output (relative to ``out``), status (written,
    kept or skipped), the true subject and expression when known, the recognizer's top-1 subject
    and probability, the expression the model reads and its probability (columns only for a model
    with the expression mixture), ``error_mm`` (the mean per-vertex error to the ground-truth neutral of the
    dataset's pairs, a column only when the source pairs any mesh) and the reason of a skip.

    Args:
        model: a :class:`~facelab.model.FaceLabModel`.
        source: what :func:`list_meshes` listed.
        out: the output folder (created when missing).
        fmt: "ply", "obj" or "off" for every output; None keeps each input's format.
        overwrite: predict again meshes whose output exists; by default they are kept (an
            earlier, perhaps interrupted, run) with the values of the earlier report.
        batch_size: meshes per model call.
        workers: threads that read and write meshes.
        progress: show a tqdm bar (meshes/s).

    Raises:
        FacelabError: ``fmt`` is unknown, ``out`` is a file or would replace an input, or generated
            data is not registered to the model's template. A mesh that cannot be read or
            written is not an error: it is skipped with a warning and reported.
        KeyboardInterrupt: after the writes under way are complete and the report of the rows
            done so far is written.
    """
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in OUTPUT_FORMATS:
            raise FacelabError(f"cannot write meshes as '{fmt}': expected one of {', '.join(OUTPUT_FORMATS)}.")
    out = Path(out)
    outputs = output_paths(source, out, fmt)
    _check_output_folder(source, out, outputs)
    check_generated(source, model)
    for message in source.warnings:
        log.warning(message)
    run = _NeutralisingRun(model, source, out, outputs)
    previous = {} if overwrite else _previous_rows(out / REPORT_NAME)
    todo = []
    for item in source.inputs:
        output = outputs[item.position]
        if overwrite or not output.exists():
            todo.append(item)
            continue
        earlier = previous.get(output.relative_to(out).as_posix(), {})
        run.record(item, KEPT, **{column: earlier.get(column, "") for column in _CARRIED_COLUMNS})
    run.predict(todo, batch_size, workers, progress)
    return run.report()


class _NeutralisingRun:
    """The rows of one :func:`neutralise_meshes` run, and its read-predict-write pipeline."""

    def __init__(self, model, source: MeshSource, out: Path, outputs: list[Path]) -> None:
        self.model, self.source, self.out, self.outputs = model, source, out, outputs
        self.columns = tuple(c for c in REPORT_COLUMNS if (c != "error_mm" or source.has_truth)
                             and (c not in _READING_COLUMNS or model.expressions))
        self.rows: dict[int, dict] = {}  # by input position
        self.in_flight: deque[tuple[MeshInput, Future, dict]] = deque()  # writes submitted, oldest first
        self.bar = None

    def row(self, item: MeshInput, status: str, **values) -> dict:
        row = dict.fromkeys(self.columns, "")
        row.update(input=item.label, output=self.outputs[item.position].relative_to(self.out).as_posix(),
                   status=status, subject=item.subject, expression=item.expression)
        row.update({column: value for column, value in values.items() if column in self.columns})
        return row

    def record(self, item: MeshInput, status: str, **values) -> None:
        self.rows[item.position] = self.row(item, status, **values)

    def skip(self, item: MeshInput, reason: str) -> None:
        warn_skipped(item.label, reason)
        self.record(item, SKIPPED, reason=reason)
        self.bar.update(1)

    def predict(self, todo: list[MeshInput], batch_size: int, workers: int, progress: bool) -> None:
        """Read, predict and write ``todo``: reads a chunk ahead, writes a chunk behind the model."""
        show = progress and bool(todo)
        self.bar = tqdm(total=len(todo), desc=f"Neutralising into {self.out.name}", unit="mesh", disable=not show)
        readers = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="facelab-read")
        writers = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="facelab-write")
        try:
            with log_above_bar(show):
                if todo:
                    self.out.mkdir(parents=True, exist_ok=True)
                for chunk in loaded_chunks(self.source, todo, self.model, readers, batch_size, with_truth=True):
                    ready = [loaded for loaded in chunk if loaded.failure is None]
                    for loaded in chunk:
                        if loaded.failure is not None:
                            self.skip(loaded.item, loaded.failure)
                    if ready:
                        self._predict_chunk(ready, writers)
                    self.settle(leave=len(ready))  # the previous chunk's writes: at most two chunks are held
                self.settle()
        except KeyboardInterrupt:
            # No file is read any more; the predictions made are written (at most two chunks), so
            # every file left is complete, and the report lists them.
            readers.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True)
            self.settle()
            self.report(interrupted=True)
            raise
        finally:
            readers.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True)
            self.bar.close()

    def _predict_chunk(self, ready: list[LoadedMesh], writers: ThreadPoolExecutor) -> None:
        model = self.model
        analysis = model.analyse(np.stack([loaded.vertices for loaded in ready]))
        readings = analysis.expression_probabilities
        for i, (loaded, vertices, embedding) in enumerate(zip(ready, analysis.neutral, analysis.embedding)):
            top = model.top_subjects_of_embedding(embedding, 1)
            read = model.top_expressions_of_reading(None if readings is None else readings[i], 1)
            error = None if loaded.truth is None else per_vertex_error(vertices, loaded.truth)
            row = self.row(loaded.item, WRITTEN, reason=loaded.note,
                           top1_subject=top[0][0] if top else "",
                           top1_probability=f"{top[0][1]:.4f}" if top else "",
                           read_expression=read[0][0] if read else "",
                           read_expression_probability=f"{read[0][1]:.4f}" if read else "",
                           error_mm="" if error is None else f"{float(error.mean()):.4f}")
            future = writers.submit(_write_prediction, self.outputs[loaded.item.position], vertices,
                                    model.triangles, error, self.source.unit_scale)
            self.in_flight.append((loaded.item, future, row))

    def settle(self, leave: int = 0) -> None:
        """Wait for the oldest writes until ``leave`` remain, recording each one's row."""
        while len(self.in_flight) > leave:
            item, future, row = self.in_flight[0]
            try:
                future.result()
            except FacelabError as error:  # disk full, no permission, a non-finite prediction
                self.in_flight.popleft()
                self.skip(item, str(error))
                continue
            self.rows[item.position] = row
            self.in_flight.popleft()
            self.bar.update(1)

    def report(self, interrupted: bool = False) -> NeutraliseReport:
        """The report of the rows so far, written atomically to ``out/neutralize.csv``."""
        report = NeutraliseReport(self.out, [self.rows[position] for position in sorted(self.rows)], self.columns,
                                  interrupted)
        if report.rows:
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=self.columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(report.rows)
            atomic_write_text(report.path, text.getvalue())
        return report
