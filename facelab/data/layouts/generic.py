"""The generic layout: a manifest or plain subject folders, and the writer of that layout.

Two forms are read:

- ``<root>/manifest.csv`` with the header ``subject,expression,path`` and an optional ``group``
  column; paths are relative to ``<root>`` or absolute, and the expression ``neutral`` marks a
  neutral mesh. When present, the manifest is the whole truth about the folder.
- ``<root>/<subject>/<expression>.<ext>`` with ext in .obj/.ply/.stl/.off; files named
  ``neutral.*`` are the subject's neutral.

Coordinates are taken as millimetres (``unit_scale`` converts other units). This module also
holds the small helpers every folder layout shares: natural sorting (``Tester_2`` before
``Tester_10``), so that record order and splits never depend on the file system's order, and
the warning about expressive meshes left without a neutral.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from pathlib import Path

from tqdm.auto import tqdm

from facelab.atomic import atomic_write_text
from facelab.data.dataset import NEUTRAL, FaceDataset, MeshRecord
from facelab.data.layouts.listing import natural_key, note_unpaired, sorted_mesh_files, sorted_subfolders
from facelab.data.vertex_cache import load_mesh_files
from facelab.errors import DatasetError
from facelab.mesh.io import MESH_SUFFIXES, write_mesh

log = logging.getLogger(__name__)

NAME = "generic"
DESCRIPTION = (
    "generic: <root>/manifest.csv with columns subject,expression,path[,group], or "
    "<root>/<subject>/<expression>.obj|.ply|.stl|.off with a neutral.* file per subject"
)

MANIFEST = "manifest.csv"
METADATA = "facelab.json"
METADATA_FORMAT = "facelab-generic"
MANIFEST_COLUMNS = ("subject", "expression", "path")
WRITE_FORMATS = ("ply", "obj")

#: How many subject folders ``detect`` looks into before giving up (it must stay cheap).
DETECT_SUBJECT_LIMIT = 50


# ---- the layout -------------------------------------------------------------------------------
def _neutral_file(folder: Path) -> Path | None:
    for suffix in MESH_SUFFIXES:
        for name in (f"{NEUTRAL}{suffix}", f"{NEUTRAL.capitalize()}{suffix}", f"{NEUTRAL.upper()}{suffix}"):
            if (folder / name).is_file():
                return folder / name
    return None


def detect(path: Path) -> bool:
    """A folder with ``manifest.csv``, or with a subject folder holding a ``neutral.*`` mesh.

    Only the first :data:`DETECT_SUBJECT_LIMIT` sub-folders are looked at; no mesh is read. The
    other layouts keep their meshes one level deeper (``<subject>/<sequence or models_reg or
    Blendshape>/``), so their trees never match.
    """
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / MANIFEST).is_file():
        return True
    return any(_neutral_file(folder) is not None for folder in sorted_subfolders(path)[:DETECT_SUBJECT_LIMIT])


def _record_order(record: MeshRecord) -> tuple:
    return (natural_key(record.subject), natural_key(record.group), not record.is_neutral,
            natural_key(record.expression), natural_key(str(record.path)))


def _folder_records(root: Path) -> list[MeshRecord]:
    records = []
    for folder in sorted_subfolders(root):
        for path in sorted_mesh_files(folder):
            stem = path.stem
            expression = NEUTRAL if stem.lower() == NEUTRAL else stem
            records.append(MeshRecord(folder.name, expression, path))
    if not records:
        raise DatasetError(
            f"{root} holds no mesh files: expected <subject>/<expression>.obj|.ply|.stl|.off or a {MANIFEST}."
        )
    return records


def read_manifest(root: Path) -> list[MeshRecord]:
    """The records listed in ``<root>/manifest.csv``, sorted.

    Raises:
        DatasetError: the manifest is unreadable, lacks a column, has no rows, has an empty
            cell, or lists a file that does not exist.
    """
    manifest = root / MANIFEST
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{manifest} could not be read ({error}): expected a UTF-8 CSV file.") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if not header:
        raise DatasetError(f"{manifest} is empty: expected a header line '{','.join(MANIFEST_COLUMNS)}' and one line per mesh.")
    missing = [column for column in MANIFEST_COLUMNS if column not in header]
    if missing:
        raise DatasetError(
            f"{manifest} lacks the column(s) {', '.join(missing)}: expected the header "
            f"'{','.join(MANIFEST_COLUMNS)}' (and optionally 'group')."
        )
    reader.fieldnames = header
    records, absent = [], []
    for line, row in enumerate(reader, start=2):
        values = {column: (row.get(column) or "").strip() for column in (*MANIFEST_COLUMNS, "group")}
        empty = [column for column in MANIFEST_COLUMNS if not values[column]]
        if empty:
            raise DatasetError(
                f"line {line} of {manifest} has no {empty[0]}: expected a value in every one of {', '.join(MANIFEST_COLUMNS)}."
            )
        path = Path(values["path"])
        path = path if path.is_absolute() else root / path
        if path.is_dir():
            raise DatasetError(f"line {line} of {manifest} lists {path}, which is a folder: expected the path of one mesh file.")
        if not path.is_file():
            absent.append(path)
        expression = NEUTRAL if values["expression"].lower() == NEUTRAL else values["expression"]
        records.append(MeshRecord(values["subject"], expression, path, values["group"]))
    if not records:
        raise DatasetError(f"{manifest} has a header but no rows: expected one line per mesh.")
    if absent:
        raise DatasetError(
            f"{manifest} lists {len(absent)} file(s) that do not exist (first: {absent[0]}): "
            f"expected paths relative to {root} or absolute."
        )
    return sorted(records, key=_record_order)


def _read_metadata(root: Path) -> dict | None:
    """The ``facelab.json`` of a previous facelab output, or None (absent, unreadable, foreign)."""
    try:
        metadata = json.loads((root / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metadata if isinstance(metadata, dict) and metadata.get("format") == METADATA_FORMAT else None


def load(path: Path, progress: bool = True, unit_scale: float = 1.0) -> FaceDataset:
    """Load a generic folder (manifest or subject folders); see the module docstring.

    Args:
        unit_scale: multiplies file coordinates to get millimetres (1 when the files are in mm,
            as facelab writes them).
    """
    root = Path(path)
    metadata = _read_metadata(root)
    if metadata is not None and not metadata.get("complete", True):
        raise DatasetError(f"{root} holds an interrupted facelab export: expected a complete one (run the export again).")
    records = read_manifest(root) if (root / MANIFEST).is_file() else sorted(_folder_records(root), key=_record_order)
    name = f"{metadata.get('source', root.name)} (saved at {root})" if metadata else f"{root.name} (folder at {root})"
    dataset = load_mesh_files(records, name=name, layout=NAME, root=root, unit_scale=unit_scale, progress=progress)
    return note_unpaired(dataset)


# ---- the writer -------------------------------------------------------------------------------
def _safe_name(label: str) -> str:
    """A file-system-safe, visible name for a label (the manifest keeps the label itself)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "_"


def _check_output_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DatasetError(
            f"{out} is a file: expected a folder (new, empty, or written by facelab before) to write the dataset into."
        )
    if out.is_dir() and any(out.iterdir()) and _read_metadata(out) is None:
        raise DatasetError(
            f"{out} is not empty and holds no {METADATA} from an earlier facelab export: "
            "expected a new or empty folder, so that no file of yours is overwritten."
        )


def _write_metadata(out: Path, dataset: FaceDataset, fmt: str, complete: bool) -> None:
    atomic_write_text(out / METADATA, json.dumps({
        "format": METADATA_FORMAT,
        "version": 1,
        "complete": complete,
        "source": dataset.name,
        "source_layout": dataset.layout,
        "units": "mm",
        "mesh_format": fmt,
        "meshes": len(dataset),
        "subjects": len(dataset.subjects),
        "pairs": len(dataset.pairs),
        "vertices": dataset.n_vertices,
        "triangles": int(len(dataset.triangles)),
    }, indent=2) + "\n")


def _previous_files(out: Path) -> set[Path]:
    """Mesh files listed by the manifest of an earlier export into ``out`` (inside ``out`` only)."""
    if not (out / MANIFEST).is_file():
        return set()
    try:
        rows = csv.DictReader(io.StringIO((out / MANIFEST).read_text(encoding="utf-8-sig")))
        paths = {(out / row["path"]).resolve() for row in rows if row.get("path")}
    except (OSError, UnicodeDecodeError, KeyError, csv.Error):
        return set()
    inside = out.resolve()
    return {path for path in paths if inside in path.parents and path.suffix.lower() in MESH_SUFFIXES}


def _remove_stale(out: Path, stale: set[Path]) -> None:
    """Delete meshes of an earlier export that the new one does not list, then empty folders."""
    for path in stale:
        path.unlink(missing_ok=True)
    for folder in sorted({path.parent for path in stale}, key=lambda p: len(p.parts), reverse=True):
        while folder != out.resolve() and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def write_generic(dataset: FaceDataset, out: str | os.PathLike, fmt: str = "ply", progress: bool = True) -> Path:
    """Write ``dataset`` in the generic layout, in millimetres; every file is written atomically.

    Produces one mesh per record at ``<out>/<subject>/[<group>/]<expression>.<fmt>`` (names made
    file-system safe, ``_2``, ``_3``... appended where labels repeat, as CoMA's frames do), a
    ``manifest.csv`` with the exact labels, and ``facelab.json`` (source name, units "mm",
    counts). ``facelab.json`` is written first with ``"complete": false`` so that an interrupted
    export can be rerun into the same folder; meshes listed by an earlier export but not by this
    one are removed.

    Raises:
        DatasetError: ``fmt`` is not "ply" or "obj", or ``out`` is a file or a non-empty folder
            that no facelab export wrote (nothing is written then).
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in WRITE_FORMATS:
        raise DatasetError(f"cannot write meshes as '{fmt}': expected one of {', '.join(WRITE_FORMATS)}.")
    out = Path(out)
    _check_output_folder(out)
    previous = _previous_files(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_metadata(out, dataset, fmt, complete=False)

    rows, taken, written = [], set(), set()
    for index, record in enumerate(tqdm(dataset.records, desc=f"Writing {out.name}", unit="mesh", disable=not progress)):
        folder = Path(_safe_name(record.subject), *([_safe_name(record.group)] if record.group else []))
        stem = NEUTRAL if record.is_neutral else _safe_name(record.expression)
        relative, copy = folder / f"{stem}.{fmt}", 1
        while relative.as_posix().lower() in taken:  # case-insensitive file systems merge names
            copy += 1
            relative = folder / f"{stem}_{copy}.{fmt}"
        taken.add(relative.as_posix().lower())
        write_mesh(dataset.mesh(index), out / relative)
        written.add((out / relative).resolve())
        rows.append((record.subject, record.expression, relative.as_posix(), record.group))

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow((*MANIFEST_COLUMNS, "group"))
    writer.writerows(rows)
    atomic_write_text(out / MANIFEST, text.getvalue())
    _remove_stale(out, previous - written)
    _write_metadata(out, dataset, fmt, complete=True)
    return out
