"""Work on many meshes at once: neutralise a folder or dataset, export a dataset, identify probes.

What ``facelab neutralize DATA --out DIR``, ``facelab export`` and ``facelab identify`` run.

A folder or dataset is first *listed* (:func:`list_meshes`: file names and labels, no mesh is
read), then streamed in chunks: background threads read the next chunk's files and write the
previous chunk's predictions while the model predicts the current one, so memory stays at a few
chunks whatever the size of the folder. Every file is written atomically (a stopped run leaves
only complete files), a mesh with a non-finite vertex is never written, and a file that cannot be
read (or is not registered to the model's template) is skipped with a warning naming it and is
listed in the report with the reason.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import logging
import os
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from facelab.atomic import atomic_write_text
from facelab.data.dataset import NEUTRAL, FaceDataset, MeshRecord
from facelab.errors import DatasetError, FacelabError, MeshError
from facelab.evaluation.metrics import cosine_similarity, per_vertex_error
from facelab.mesh.face_mesh import FaceMesh
from facelab.mesh.io import MESH_SUFFIXES, read_mesh, write_mesh

log = logging.getLogger(__name__)

#: The report ``facelab neutralize DATA --out DIR`` writes into DIR.
REPORT_NAME = "neutralize.csv"
#: Mesh formats a batch can write (the input's own format by default).
OUTPUT_FORMATS = ("ply", "obj", "off")
#: Meshes predicted per model call, and read or written ahead of it.
DEFAULT_BATCH_SIZE = 32
DEFAULT_WORKERS = 4

# A row's status in the report.
WRITTEN = "written"   # predicted and written by this run
KEPT = "kept"         # the output existed already (an earlier run) and was left as it was
SKIPPED = "skipped"   # could not be done; the reason says why

REPORT_COLUMNS = ("input", "output", "status", "subject", "expression", "top1_subject", "top1_probability",
                  "error_mm", "reason")
_CARRIED_COLUMNS = ("top1_subject", "top1_probability", "error_mm")

# The layouts whose meshes are files read one by one; the others (SynthFaces, ICT-FaceKit) are
# generated arrays.
_FILE_LAYOUTS = ("generic", "coma", "facewarehouse", "facescape")


# ---- listing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeshInput:
    """One mesh of a folder or dataset, listed but not read.

    Attributes:
        position: its place in the listing (report rows follow it).
        label: how reports name it: the file's path, or ``subject/[group/]expression`` for
            generated data.
        relative_output: where its output goes under an output folder, with the input's suffix
            (the file's path relative to the folder read, or ``subject/[group/]expression.ply``).
        subject: the true subject when the layout says it, else "".
        expression: the expression label when the layout says it, else "".
        path: the mesh file, or None for generated data.
        index: its row in the generated dataset's vertex array, or None for a file.
        truth_path: the file of its ground-truth neutral (from the dataset's pairs), or None.
        truth_index: the row of its ground-truth neutral in generated data, or None.
    """

    position: int
    label: str
    relative_output: Path
    subject: str = ""
    expression: str = ""
    path: Path | None = None
    index: int | None = None
    truth_path: Path | None = None
    truth_index: int | None = None

    @property
    def has_truth(self) -> bool:
        return self.truth_path is not None or self.truth_index is not None


@dataclass
class MeshSource:
    """The meshes of a mesh file, a folder or a dataset, listed without reading them.

    Attributes:
        name: what it is, for messages ("a folder of 40 meshes at /data/scans").
        inputs: one :class:`MeshInput` per mesh, in the layout's order.
        root: the folder (or file) listed; None for SynthFaces.
        unit_scale: multiplies file coordinates to get millimetres (CoMA: 1000).
        dataset: the generated dataset the inputs index into (SynthFaces, ICT-FaceKit), or None.
        warnings: what the layout's scan noted (sequences that cannot be paired, ...).
    """

    name: str
    inputs: list[MeshInput]
    root: Path | None = None
    unit_scale: float = 1.0
    dataset: FaceDataset | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Each subject's neutral is the ground truth of all its expressions: keep the last few read.
        self._read_truth_file = functools.lru_cache(maxsize=16)(self._read_file)

    @property
    def has_truth(self) -> bool:
        """Whether any mesh's ground-truth neutral is known (the dataset pairs it)."""
        return any(item.has_truth for item in self.inputs)

    def _read_file(self, path: Path, model) -> np.ndarray:
        mesh = read_mesh(path, unit_scale=self.unit_scale)
        return (model.check_mesh(mesh) if model is not None else mesh).vertices

    def read(self, item: MeshInput, model=None) -> np.ndarray:
        """The vertices of ``item`` in millimetres (n, 3).

        Args:
            item: one of :attr:`inputs`.
            model: when given, the mesh must be registered to its template.

        Raises:
            MeshError: the file cannot be read, or is not registered to ``model``'s template.
        """
        if item.path is not None:
            return self._read_file(item.path, model)
        return np.array(self.dataset.vertices[item.index], dtype=np.float32)

    def read_truth(self, item: MeshInput, model=None) -> np.ndarray | None:
        """The vertices of ``item``'s ground-truth neutral in millimetres, or None when unknown.

        Raises:
            MeshError: the neutral's file cannot be read or is not registered to ``model``'s template.
        """
        if item.truth_path is not None:
            return self._read_truth_file(item.truth_path, model)
        if item.truth_index is not None:
            return np.array(self.dataset.vertices[item.truth_index], dtype=np.float32)
        return None


def is_batch_input(source: str | os.PathLike) -> bool:
    """Whether ``source`` names many meshes ('synth', a folder, a morphable-model ``.npz``) rather
    than one mesh file. A path that does not exist counts as a folder unless it ends like a mesh
    file, so its error names what was expected."""
    path = Path(source)
    if str(source) == "synth" or path.is_dir() or path.suffix.lower() == ".npz":
        return True
    return not path.exists() and path.suffix.lower() not in MESH_SUFFIXES


def list_meshes(source: str | os.PathLike, layout: str | None = None, exclude: str | os.PathLike | None = None,
                progress: bool = True, **options) -> MeshSource:
    """List the meshes of a mesh file, a folder or any dataset facelab reads, without reading them.

    A folder in a known layout (see :func:`facelab.data.layouts.load_dataset`) gives its meshes
    with their labels and ground-truth neutrals; any other folder gives every mesh file under it
    (sub-folders included, hidden files not). SynthFaces and morphable models are generated (in
    the cache, memory-mapped), and their meshes are named ``subject/[group/]expression``.

    Args:
        source: a mesh file, a folder, a morphable-model ``.npz`` or ``"synth"``.
        layout: force a dataset layout by name instead of detecting it.
        exclude: leave out files under this folder (an output folder inside the one listed).
        progress: show a progress bar while generated data is made for the first time.
        options: passed to the generator of generated data (``identities``, ``seed``).

    Raises:
        DatasetError: the source does not exist, holds no mesh file, or is not in ``layout``.
    """
    from facelab.data.layouts import SYNTH, detect_layout, layout_module, load_dataset

    if str(source) == SYNTH or layout == SYNTH:
        return meshes_of_dataset(load_dataset(SYNTH, progress=progress, **options))
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"{path} does not exist: expected a mesh file, a folder of meshes, a dataset or 'synth'.")
    if path.is_file() and path.suffix.lower() != ".npz":
        if path.suffix.lower() not in MESH_SUFFIXES:
            raise DatasetError(f"{path} is neither a mesh file ({', '.join(MESH_SUFFIXES)}) nor a folder or "
                               "morphable-model .npz.")
        return MeshSource(f"the mesh {path}", [MeshInput(0, str(path), Path(path.name), path=path)], root=path)
    exclude = Path(exclude) if exclude is not None else None
    if exclude is not None and path.resolve() not in exclude.resolve().parents:
        exclude = None  # only a folder inside the one listed is left out
    if layout is None:
        try:
            layout = detect_layout(path)
        except DatasetError:
            if not path.is_dir():
                raise
            return _tree_source(path, exclude)
    if layout not in _FILE_LAYOUTS:
        return meshes_of_dataset(load_dataset(path, format=layout, progress=progress, **options))
    module = layout_module(layout)
    if not module.detect(path):
        raise DatasetError(f"{path} is not in the {layout} layout: expected {module.DESCRIPTION}.")
    records, unit_scale, warnings = _layout_records(path, layout)
    return _file_source(f"the {layout} dataset at {path}", path, records, unit_scale, warnings, exclude)


def _layout_records(root: Path, layout: str) -> tuple[list[MeshRecord], float, list[str]]:
    """The records a file layout would read (no mesh is read), its unit scale and scan warnings."""
    if layout == "generic":
        from facelab.data.layouts.generic import MANIFEST, read_manifest
        from facelab.data.layouts.listing import sorted_mesh_files, sorted_subfolders

        if (root / MANIFEST).is_file():
            return read_manifest(root), 1.0, []
        # <root>/<subject>/<expression>.<ext>, as the generic layout reads a folder without a manifest
        records = [MeshRecord(folder.name, NEUTRAL if mesh.stem.lower() == NEUTRAL else mesh.stem, mesh)
                   for folder in sorted_subfolders(root) for mesh in sorted_mesh_files(folder)]
        return records, 1.0, []
    if layout == "coma":
        from facelab.data.layouts import coma

        records, warnings = coma.select_records(root)
        return records, coma.UNIT_SCALE, warnings
    if layout == "facewarehouse":
        from facelab.data.layouts import facewarehouse

        records = facewarehouse.records_of(root)
        neutral_first = [r.path for r in records if r.is_neutral] + [r.path for r in records if not r.is_neutral]
        return records, facewarehouse.guess_unit_scale(neutral_first[:5]), []
    from facelab.data.layouts import facescape

    records, warnings = facescape.select_records(root)
    return records, 1.0, warnings


def _neutral_of(records: list[MeshRecord]) -> dict[int, int]:
    """Expressive record -> its ground-truth neutral record, by the dataset's own pairing rule
    (:attr:`FaceDataset.pairs`: the same subject and group), from the labels alone."""
    labels_only = FaceDataset("labels", "", np.empty((len(records), 0, 3), dtype=np.float32),
                              np.empty((0, 3), dtype=np.int64), records)
    return {pair.expressive: pair.neutral for pair in labels_only.pairs}


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    return folder.resolve() in path.resolve().parents


def _file_source(name: str, root: Path, records: list[MeshRecord], unit_scale: float, warnings: list[str],
                 exclude: Path | None) -> MeshSource:
    if not records:
        raise DatasetError(f"{root} holds no mesh files.")
    truth = _neutral_of(records)
    inputs = []
    for index, record in enumerate(records):
        if _inside(record.path, exclude):
            continue
        try:
            relative = Path(record.path).relative_to(root)
        except ValueError:  # a manifest may list files outside its folder
            relative = _label_path(record) / Path(record.path).name
        neutral = truth.get(index)
        inputs.append(MeshInput(len(inputs), str(record.path), relative, record.subject, record.expression,
                                path=Path(record.path), truth_path=None if neutral is None else records[neutral].path))
    if not inputs:
        raise DatasetError(f"{root} holds no mesh files outside {exclude}.")
    return MeshSource(name, inputs, root=root, unit_scale=unit_scale, warnings=list(warnings))


def _tree_source(root: Path, exclude: Path | None) -> MeshSource:
    """Every visible mesh file under ``root``, in natural order of their relative paths."""
    from facelab.data.layouts.listing import natural_key

    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        files += [Path(folder, name) for name in names
                  if not name.startswith(".") and Path(name).suffix.lower() in MESH_SUFFIXES]
    files = [path for path in files if not _inside(path, exclude)]
    if not files:
        raise DatasetError(f"{root} holds no mesh files ({', '.join(MESH_SUFFIXES)}) and is in no dataset layout.")
    files.sort(key=lambda path: tuple(natural_key(part) for part in path.relative_to(root).parts))
    inputs = [MeshInput(position, str(path), path.relative_to(root), path=path) for position, path in enumerate(files)]
    return MeshSource(f"a folder of {len(inputs)} meshes at {root}", inputs, root=root)


def _safe_name(label: str) -> str:
    """A file-system-safe, visible name for a label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "_"


def _label_path(record: MeshRecord) -> Path:
    return Path(_safe_name(record.subject), *([_safe_name(record.group)] if record.group else []))


def meshes_of_dataset(dataset: FaceDataset) -> MeshSource:
    """The meshes of a dataset already in memory (or memory-mapped), as :func:`neutralise_meshes`
    takes them: named ``subject/[group/]expression``, written as ``subject/[group/]expression.ply``,
    each expressive mesh with the ground-truth neutral of its pair.

    Args:
        dataset: any :class:`~facelab.data.dataset.FaceDataset` (SynthFaces, ICT-FaceKit, one built in Python).
    """
    truth = {pair.expressive: pair.neutral for pair in dataset.pairs}
    inputs = []
    for index, record in enumerate(dataset.records):
        label = "/".join([record.subject, *([record.group] if record.group else []), record.expression])
        relative = _label_path(record) / f"{NEUTRAL if record.is_neutral else _safe_name(record.expression)}.ply"
        inputs.append(MeshInput(index, label, relative, record.subject, record.expression, index=index,
                                truth_index=truth.get(index)))
    return MeshSource(dataset.name, inputs, root=dataset.root, dataset=dataset)  # its loader logged its warnings


# ---- reading in the background ----------------------------------------------------------------
@dataclass
class _Loaded:
    """One input after its background read: vertices (mm) and truth, or why it failed."""

    item: MeshInput
    vertices: np.ndarray | None = None
    truth: np.ndarray | None = None
    failure: str | None = None
    note: str = ""


def _load(source: MeshSource, item: MeshInput, model, with_truth: bool) -> _Loaded:
    try:
        vertices = source.read(item, model)
    except MeshError as error:
        return _Loaded(item, failure=str(error))
    loaded = _Loaded(item, vertices)
    if with_truth and item.has_truth:
        try:
            loaded.truth = source.read_truth(item, model)
        except MeshError as error:
            loaded.note = f"no error measured: its ground-truth neutral could not be used ({error})"
    return loaded


def _loaded_chunks(source: MeshSource, items: list[MeshInput], model, pool: ThreadPoolExecutor,
                   batch_size: int, with_truth: bool = False) -> Iterator[list[_Loaded]]:
    """``items`` read by ``pool`` a chunk ahead of the one the caller works on."""
    chunks = [items[start:start + batch_size] for start in range(0, len(items), batch_size)]

    def submit(chunk: list[MeshInput]) -> list[Future]:
        return [pool.submit(_load, source, item, model, with_truth) for item in chunk]

    ahead = submit(chunks[0]) if chunks else []
    for number in range(len(chunks)):
        current = ahead
        ahead = submit(chunks[number + 1]) if number + 1 < len(chunks) else []
        yield [future.result() for future in current]


def _warn_skipped(label: str, reason: str) -> None:
    log.warning("skipped %s: %s", label, reason)


def _log_above_bar(progress: bool) -> contextlib.AbstractContextManager:
    """While a progress bar shows: log messages printed on their own lines above it, not into it."""
    return logging_redirect_tqdm() if progress else contextlib.nullcontext()


def _check_generated(source: MeshSource, model) -> None:
    """Generated data shares one topology: check it against the model's template once."""
    if source.dataset is not None and len(source.dataset):
        model.check_mesh(source.dataset.mesh(0))


# ---- neutralise -------------------------------------------------------------------------------
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


def _output_paths(source: MeshSource, out: Path, fmt: str | None) -> list[Path]:
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
    and probability, ``error_mm`` (the mean per-vertex error to the ground-truth neutral of the
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
    outputs = _output_paths(source, out, fmt)
    _check_output_folder(source, out, outputs)
    _check_generated(source, model)
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
        self.columns = tuple(c for c in REPORT_COLUMNS if c != "error_mm" or source.has_truth)
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
        _warn_skipped(item.label, reason)
        self.record(item, SKIPPED, reason=reason)
        self.bar.update(1)

    def predict(self, todo: list[MeshInput], batch_size: int, workers: int, progress: bool) -> None:
        """Read, predict and write ``todo``: reads a chunk ahead, writes a chunk behind the model."""
        show = progress and bool(todo)
        self.bar = tqdm(total=len(todo), desc=f"Neutralising into {self.out.name}", unit="mesh", disable=not show)
        readers = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="facelab-read")
        writers = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="facelab-write")
        try:
            with _log_above_bar(show):
                if todo:
                    self.out.mkdir(parents=True, exist_ok=True)
                for chunk in _loaded_chunks(self.source, todo, self.model, readers, batch_size, with_truth=True):
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

    def _predict_chunk(self, ready: list[_Loaded], writers: ThreadPoolExecutor) -> None:
        model = self.model
        predicted, embeddings = model.neutralise_and_embed(np.stack([loaded.vertices for loaded in ready]))
        for loaded, vertices, embedding in zip(ready, predicted, embeddings):
            top = model.top_subjects_of_embedding(embedding, 1)
            error = None if loaded.truth is None else per_vertex_error(vertices, loaded.truth)
            row = self.row(loaded.item, WRITTEN, reason=loaded.note,
                           top1_subject=top[0][0] if top else "",
                           top1_probability=f"{top[0][1]:.4f}" if top else "",
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


# ---- export -----------------------------------------------------------------------------------
def export_dataset(source: str | os.PathLike, out: str | os.PathLike, fmt: str = "ply", layout: str | None = None,
                   progress: bool = True, **options) -> FaceDataset:
    """Write any dataset facelab reads as mesh files in the generic layout, with its labels.

    ``out`` gets ``<subject>/[<group>/]<expression>.<fmt>``, ``manifest.csv`` (subject,
    expression, path, group) and ``facelab.json``, which :func:`facelab.data.load_dataset` reads
    back as the same meshes with the same labels (see
    :func:`~facelab.data.layouts.generic.write_generic`).

    Args:
        source: ``"synth"``, a dataset folder or a morphable-model ``.npz``.
        out: a new or empty folder, or an earlier facelab export.
        fmt: "ply" or "obj".
        layout: force a dataset layout by name instead of detecting it.
        progress: show progress bars.
        options: passed to the dataset's loader (``identities``, ``seed``).

    Returns:
        The dataset written.
    """
    from facelab.data.layouts import load_dataset
    from facelab.data.layouts.generic import write_generic

    dataset = load_dataset(source, format=layout, progress=progress, **options)
    write_generic(dataset, out, fmt, progress=progress)
    return dataset


# ---- identify ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class GalleryMatch:
    """A gallery subject ranked for one probe."""

    rank: int            # 1-based
    subject: str
    similarity: float    # cosine similarity of identity embeddings


class IdentityGallery:
    """The neutral faces of a dataset's subjects, embedded once, to rank probes against.

    The protocol of ``facelab evaluate``'s rank-k identification: probe and gallery go through
    ``FaceLabModel.identity_embedding`` and are compared by
    :func:`~facelab.evaluation.metrics.cosine_similarity`; a subject with several neutral faces
    counts with its best one.

    Args:
        model: a :class:`~facelab.model.FaceLabModel`.
        dataset: the gallery; subjects without a neutral face are not in it.
        batch_size: neutral faces embedded per model call (a memory-mapped dataset is read a
            chunk at a time).

    Raises:
        FacelabError: the dataset has no neutral face or is not registered to the model's template.
    """

    def __init__(self, model, dataset: FaceDataset, batch_size: int = DEFAULT_BATCH_SIZE * 2) -> None:
        self.name = dataset.name
        neutral = np.array([i for i, record in enumerate(dataset.records) if record.is_neutral], dtype=np.int64)
        if neutral.size == 0:
            raise DatasetError(f"{dataset.name} has no neutral face: the gallery is made of each subject's neutral.")
        model.check_mesh(dataset.mesh(int(neutral[0])))
        self.labels = np.array([dataset.records[i].subject for i in neutral])
        self.embeddings = np.concatenate([
            np.atleast_2d(model.identity_embedding(np.array(dataset.vertices[neutral[start:start + batch_size]])))
            for start in range(0, neutral.size, batch_size)
        ])

    @property
    def subjects(self) -> list[str]:
        return sorted(set(self.labels.tolist()))

    def rank(self, embeddings: np.ndarray, k: int | None = 5) -> list[list[GalleryMatch]]:
        """For each probe embedding (p, d), the gallery subjects by decreasing similarity (the best k;
        equal similarities in subject order)."""
        similarity = cosine_similarity(np.atleast_2d(embeddings), self.embeddings)
        subjects = self.subjects
        per_subject = np.stack([similarity[:, self.labels == subject].max(axis=1) for subject in subjects], axis=1)
        ranked = []
        for scores in per_subject:
            order = sorted(range(len(subjects)), key=lambda column: (-scores[column], subjects[column]))
            ranked.append([GalleryMatch(rank + 1, subjects[column], float(scores[column]))
                           for rank, column in enumerate(order[:k] if k else order)])
        return ranked


def identify(model, probe: str | os.PathLike, gallery: str | os.PathLike, k: int = 5,
             batch_size: int = DEFAULT_BATCH_SIZE, workers: int = DEFAULT_WORKERS, progress: bool = True,
             **options) -> dict:
    """Rank the subjects of a gallery dataset for each probe mesh, by identity similarity.

    Args:
        model: a :class:`~facelab.model.FaceLabModel`.
        probe: a mesh file, or a folder (or dataset) whose every mesh is a probe.
        gallery: ``"synth"``, a dataset folder or a morphable-model ``.npz``: its subjects' neutral
            faces are the gallery (see :class:`IdentityGallery`).
        k: how many subjects to list per probe.
        batch_size: probes embedded per model call.
        workers: threads that read probe files ahead of the model.
        progress: show progress bars.
        options: passed to the gallery's loader (``identities``, ``seed``).

    Returns:
        ``{"gallery", "gallery_subjects", "k", "probes": [{"probe", "subject", "matches":
        [{"rank", "subject", "similarity"}]}], "skipped": [{"probe", "reason"}]}``; a probe's
        ``subject`` is its true subject when its folder's layout says it, else "".

    Raises:
        FacelabError: a single probe file cannot be read or is not registered to the model's
            template, no probe of a folder can, or the gallery cannot be read.
    """
    from facelab.data.layouts import load_dataset

    probes = list_meshes(probe, progress=progress)
    if len(probes.inputs) == 1 and probes.inputs[0].path is not None and Path(probe).is_file():
        probes.read(probes.inputs[0], model)  # one file: its error is the command's error
    _check_generated(probes, model)
    index = IdentityGallery(model, load_dataset(gallery, progress=progress, **options))
    result = {"gallery": index.name, "gallery_subjects": len(index.subjects), "k": k, "probes": [], "skipped": []}
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="facelab-identify")
    try:
        show = progress and len(probes.inputs) > 1
        with tqdm(total=len(probes.inputs), desc="Identifying", unit="mesh", disable=not show) as bar, \
                _log_above_bar(show):
            for chunk in _loaded_chunks(probes, probes.inputs, model, pool, batch_size):
                ready = [loaded for loaded in chunk if loaded.failure is None]
                for loaded in chunk:
                    if loaded.failure is not None:
                        _warn_skipped(loaded.item.label, loaded.failure)
                        result["skipped"].append({"probe": loaded.item.label, "reason": loaded.failure})
                if ready:
                    embeddings = model.identity_embedding(np.stack([loaded.vertices for loaded in ready]))
                    for loaded, matches in zip(ready, index.rank(embeddings, k)):
                        result["probes"].append({
                            "probe": loaded.item.label, "subject": loaded.item.subject,
                            "matches": [{"rank": m.rank, "subject": m.subject, "similarity": m.similarity}
                                        for m in matches],
                        })
                bar.update(len(chunk))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if not result["probes"]:
        reason = result["skipped"][0]["reason"].rstrip(".")
        raise FacelabError(f"none of the {len(result['skipped'])} probe meshes of {probe} could be used "
                           f"(first: {reason}).")
    return result
