"""Read a list of mesh files once into a memory-mapped vertex array in the cache directory.

Real datasets are large (FaceScape is about 6 GB of vertices), so the first load reads every
file with a progress bar and stores the vertices as one ``.npy`` file; later loads memory-map it
and start at once. The cache key covers every path, size and modification time and the unit
scale, so an edited dataset is read again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facelab.atomic import atomic_path, atomic_write_text, preallocated_memmap, reserve_rows
from facelab.data.dataset import FaceDataset, MeshRecord
from facelab.errors import DatasetError, MeshError
from facelab.mesh.io import read_mesh
from facelab.mesh.validation import triangles_hash
from facelab.paths import cache_dir

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def _cache_key(layout: str, records: list[MeshRecord], unit_scale: float) -> str:
    digest = hashlib.sha256(f"{CACHE_VERSION}|{layout}|{unit_scale!r}".encode())
    for record in records:
        stat = os.stat(record.path)
        digest.update(f"|{record.path}|{stat.st_size}|{stat.st_mtime_ns}|{record.subject}|{record.expression}|{record.group}".encode())
    return digest.hexdigest()[:24]


def _record_to_json(record: MeshRecord) -> dict:
    return {"subject": record.subject, "expression": record.expression, "path": str(record.path), "group": record.group}


def _record_from_json(data: dict) -> MeshRecord:
    return MeshRecord(data["subject"], data["expression"], Path(data["path"]), data.get("group", ""))


def load_mesh_files(
    records: list[MeshRecord],
    *,
    name: str,
    layout: str,
    root: Path,
    unit_scale: float = 1.0,
    progress: bool = True,
) -> FaceDataset:
    """Build a dataset from mesh files, skipping unreadable ones with a warning.

    Args:
        records: one per file (``record.path`` set), in the dataset's order (sorted by the caller).
        unit_scale: multiplies file coordinates to get millimetres (CoMA: 1000, ICT-FaceKit: 10).

    The template topology is the one most files share (by vertex count, then triangle list);
    files with another topology are skipped with a warning, as are unreadable files.

    Raises:
        DatasetError: no file could be read.
    """
    if not records:
        raise DatasetError(f"{root} contains no meshes for the {layout} layout.")
    for record in records:
        if record.path is None or not Path(record.path).is_file():
            raise DatasetError(f"{record.path} is listed in {root} but is not a file.")
    key = _cache_key(layout, records, unit_scale)
    folder = cache_dir("datasets")
    array_path, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
    if array_path.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            vertices = np.load(array_path, mmap_mode="r")
            dataset = FaceDataset(
                name=name, layout=layout, vertices=vertices, triangles=np.asarray(meta["triangles"], dtype=np.int64),
                records=[_record_from_json(r) for r in meta["records"]], root=root, warnings=list(meta["warnings"]),
            )
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            array_path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
        else:
            for message in dataset.warnings:  # the files skipped on the first load are still missing
                log.warning(message)
            return dataset

    for stale in folder.glob(f"{key}.staging-*.npy"):  # left by an interrupted first load
        stale.unlink(missing_ok=True)
    try:
        return _read_into_cache(records, key, folder, name, layout, root, unit_scale, progress)
    finally:
        # Done or failed (a full disk, a stop), the staging maps go: they may be gigabytes.
        for path in folder.glob(f"{key}.staging-*.npy"):
            path.unlink(missing_ok=True)


def _read_into_cache(records: list[MeshRecord], key: str, folder: Path, name: str, layout: str, root: Path,
                     unit_scale: float, progress: bool) -> FaceDataset:
    array_path, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
    warnings: list[str] = []
    # Meshes are staged by vertex count (one memory map each) until the majority topology is known.
    staging: dict[int, np.ndarray] = {}
    staged: list[tuple[MeshRecord, tuple[int, str], int]] = []  # (record, topology, row in its staging map)
    triangles_of: dict[tuple[int, str], np.ndarray] = {}
    topology_votes: Counter = Counter()
    filled: Counter = Counter()
    for record in tqdm(records, desc=f"Reading {layout} meshes (first load only)", unit="mesh", disable=not progress):
        try:
            mesh = read_mesh(record.path, unit_scale=unit_scale)
        except MeshError as error:
            warnings.append(f"skipped {record.path}: {error}")
            continue
        n = mesh.n_vertices
        if n not in staging:
            # Sized for every record but reserved row by row as meshes arrive: a stray vertex
            # count would otherwise take disk for all of them.
            staging[n] = np.lib.format.open_memmap(folder / f"{key}.staging-{n}.npy", mode="w+", dtype=np.float32,
                                                   shape=(len(records), n, 3))
        row = filled[n]
        filled[n] += 1
        reserve_rows(staging[n], row, 1)
        staging[n][row] = mesh.vertices
        topology = (n, triangles_hash(mesh.triangles))
        topology_votes[topology] += 1
        triangles_of.setdefault(topology, mesh.triangles)
        staged.append((record, topology, row))
    if not staged:
        first = warnings[0] if warnings else ""
        raise DatasetError(f"none of the {len(records)} meshes in {root} could be read ({first}).")

    winner = topology_votes.most_common(1)[0][0]
    n_vertices = winner[0]
    for record, topology, _ in staged:
        if topology[0] != n_vertices:
            warnings.append(f"skipped {record.path}: expected {n_vertices} vertices in the template's order "
                            f"(as most files have), got {topology[0]}.")
        elif topology != winner:
            warnings.append(f"skipped {record.path}: its triangles differ from the other meshes' "
                            "(not registered to the same template).")
    keep = [row for _, topology, row in staged if topology == winner]
    kept_records = [record for record, topology, _ in staged if topology == winner]
    triangles = triangles_of[winner]
    source = staging[n_vertices]

    with atomic_path(array_path) as tmp:
        final = preallocated_memmap(tmp, (len(keep), n_vertices, 3))
        for start in range(0, len(keep), 256):
            rows = keep[start:start + 256]
            final[start:start + len(rows)] = source[rows]
        final.flush()
        del final
    del source, staging
    atomic_write_text(meta_path, json.dumps({
        "records": [_record_to_json(r) for r in kept_records],
        "triangles": triangles.tolist(),
        "warnings": warnings,
    }))
    for message in warnings:
        log.warning(message)
    return FaceDataset(name=name, layout=layout, vertices=np.load(array_path, mmap_mode="r"), triangles=triangles,
                       records=kept_records, root=root, warnings=warnings)
