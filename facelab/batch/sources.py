"""Where a batch's meshes come from: a folder, a dataset's files or a generated dataset, listed
without reading a mesh, then read a chunk ahead of the model by background threads."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.contrib.logging import logging_redirect_tqdm

from facelab.data.dataset import NEUTRAL, FaceDataset, MeshRecord
from facelab.errors import DatasetError, MeshError
from facelab.mesh.io import MESH_SUFFIXES, read_mesh

log = logging.getLogger(__name__)

#: Meshes predicted per model call, and read or written ahead of it.
DEFAULT_BATCH_SIZE = 32
DEFAULT_WORKERS = 4

# The layouts whose meshes are files read one by one; the others (SynthFaces, ICT-FaceKit) are
# generated arrays.
_FILE_LAYOUTS = ("generic", "coma", "facewarehouse", "facescape")


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
class LoadedMesh:
    """One input after its background read: vertices (mm) and truth, or why it failed."""

    item: MeshInput
    vertices: np.ndarray | None = None
    truth: np.ndarray | None = None
    failure: str | None = None
    note: str = ""


def _load(source: MeshSource, item: MeshInput, model, with_truth: bool) -> LoadedMesh:
    try:
        vertices = source.read(item, model)
    except MeshError as error:
        return LoadedMesh(item, failure=str(error))
    loaded = LoadedMesh(item, vertices)
    if with_truth and item.has_truth:
        try:
            loaded.truth = source.read_truth(item, model)
        except MeshError as error:
            loaded.note = f"no error measured: its ground-truth neutral could not be used ({error})"
    return loaded


def loaded_chunks(source: MeshSource, items: list[MeshInput], model, pool: ThreadPoolExecutor,
                   batch_size: int, with_truth: bool = False) -> Iterator[list[LoadedMesh]]:
    """``items`` read by ``pool`` a chunk ahead of the one the caller works on."""
    chunks = [items[start:start + batch_size] for start in range(0, len(items), batch_size)]

    def submit(chunk: list[MeshInput]) -> list[Future]:
        return [pool.submit(_load, source, item, model, with_truth) for item in chunk]

    ahead = submit(chunks[0]) if chunks else []
    for number in range(len(chunks)):
        current = ahead
        ahead = submit(chunks[number + 1]) if number + 1 < len(chunks) else []
        yield [future.result() for future in current]


def warn_skipped(label: str, reason: str) -> None:
    log.warning("skipped %s: %s", label, reason)


def log_above_bar(progress: bool) -> contextlib.AbstractContextManager:
    """While a progress bar shows: log messages printed on their own lines above it, not into it."""
    return logging_redirect_tqdm() if progress else contextlib.nullcontext()


def check_generated(source: MeshSource, model) -> None:
    """Generated data shares one topology: check it against the model's template once."""
    if source.dataset is not None and len(source.dataset):
        model.check_mesh(source.dataset.mesh(0))
