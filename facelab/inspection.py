"""What ``facelab inspect`` reports about a path: a mesh file or a dataset."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facelab.data.layouts import SYNTH, load_dataset
from facelab.mesh.io import MESH_SUFFIXES, read_mesh
from facelab.mesh.validation import triangles_hash


def _ply_encoding(path: Path) -> str:
    with open(path, "rb") as handle:
        for _ in range(3):
            line = handle.readline()
            if line.startswith(b"format"):
                return "binary" if b"binary" in line else "ASCII"
    return "unknown"


def inspect_mesh(path: Path) -> dict:
    mesh = read_mesh(path)
    kind = path.suffix[1:].upper()
    if kind == "PLY":
        kind = f"PLY ({_ply_encoding(path)})"
    extent = mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0)
    info = {
        "path": str(path),
        "format": kind,
        "vertices": mesh.n_vertices,
        "triangles": mesh.n_triangles,
        "extent": " x ".join(f"{value:.1f}" for value in extent) + " (file units; facelab expects mm)",
        "topology": triangles_hash(mesh.triangles),
    }
    problems = mesh_problems(mesh)
    if problems:
        info["problems"] = problems
    return info


def mesh_problems(mesh) -> list[str]:
    """What makes a readable mesh unfit as a face surface: no triangles, or degenerate ones."""
    if mesh.n_triangles == 0:
        return ["no triangles: a point cloud, or a file cut short before its faces"]
    t = mesh.triangles
    repeated = np.flatnonzero((t[:, 0] == t[:, 1]) | (t[:, 1] == t[:, 2]) | (t[:, 0] == t[:, 2]))
    problems = []
    if repeated.size:
        problems.append(f"{repeated.size} degenerate triangle(s) naming one vertex twice (first: triangle {int(repeated[0])})")
    used = np.zeros(mesh.n_vertices, dtype=bool)
    used[t.reshape(-1)] = True
    if not used.all():
        problems.append(f"{int((~used).sum())} of {mesh.n_vertices} vertices belong to no triangle")
    return problems


def inspect_path(path: str | Path, layout: str | None = None) -> dict:
    """A summary dict of a mesh file, a dataset folder, a morphable-model file, or ``"synth"``.

    Raises:
        FacelabError: the path cannot be read or recognised.
    """
    if str(path) == SYNTH or layout == SYNTH:
        return load_dataset(SYNTH).summary()
    path = Path(path)
    if path.suffix.lower() in MESH_SUFFIXES and not path.is_dir():
        return inspect_mesh(path)
    # The summary lists the files skipped on reading itself; the loader's log would repeat them.
    logger = logging.getLogger("facelab.data")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        info = load_dataset(path, format=layout).summary()
    finally:
        logger.setLevel(level)
    return {"path": str(path), **info}


__all__ = ["inspect_mesh", "inspect_path"]
