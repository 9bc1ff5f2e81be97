"""Reading and writing face meshes (OBJ, PLY ASCII and binary, STL, OFF) through trimesh.

Registered meshes carry meaning in their vertex order, so trimesh is always called with
``process=False`` (no merging, no reordering) and, for OBJ, ``maintain_order=True`` (texture
seams do not split vertices). Quads and larger polygons are split into triangles by trimesh.

STL stores a triangle soup with no shared vertices: on reading, repeated positions are merged in
order of first appearance, which restores a connected mesh but cannot restore a registered
vertex order. Prefer PLY or OBJ for registered meshes.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_path
from facelab.errors import MeshError
from facelab.mesh.face_mesh import FaceMesh
from facelab.mesh.validation import validate_mesh

log = logging.getLogger(__name__)

# trimesh's parsers and writers build numpy dtypes from strings, which numpy reads with
# ast.literal_eval; on CPython 3.11, AST construction in two threads at once can fail with a
# spurious SystemError (python/cpython#106905), which made a valid file of a folder read on
# several threads look unreadable. One thread at a time parses or formats a mesh: that work holds
# the GIL anyway, and the file reads and the model still overlap.
_TRIMESH_LOCK = threading.Lock()

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off")


FLOAT32_LIMIT = float(np.finfo(np.float32).max)


_PLY_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
              "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}


def _ply_shortfall(path: Path) -> str | None:
    """Why a PLY is cut short, if it is: it ends inside its header, or (binary) before the bytes its
    header declares for the vertices and the smallest possible faces."""
    data = path.read_bytes()
    end = data.find(b"end_header")
    if end < 0:
        return "it ends inside its header"
    header = data[:end].decode("ascii", errors="replace").split("\n")
    if not any(line.startswith("format binary") for line in header):
        return None
    needed, element, count = 0, None, 0
    for line in header:
        words = line.split()
        if words[:1] == ["element"] and len(words) == 3 and words[2].isdigit():
            element, count = words[1], int(words[2])
        elif words[:2] == ["property", "list"] and len(words) >= 4 and element is not None:
            needed += count * (_PLY_SIZES.get(words[2], 1) + 3 * _PLY_SIZES.get(words[3], 4))
        elif words[:1] == ["property"] and len(words) >= 3 and element is not None:
            needed += count * _PLY_SIZES.get(words[1], 4)
    newline = data.find(b"\n", end)
    body = len(data) - newline - 1 if newline >= 0 else 0
    return f"it holds {body} bytes after its header where its elements need at least {needed}" if body < needed else None


def _unreadable(path: Path, kind: str) -> str:
    """The sentence for a file whose contents a parser rejected (its own message names parser internals)."""
    shortfall = _ply_shortfall(path) if kind == "PLY" else None
    if shortfall:
        return f"{path} could not be read as PLY: it is truncated ({shortfall})."
    return (f"{path} could not be read as {kind}: its contents do not follow the {kind} format "
            f"(a damaged or mislabelled file); expected a valid {kind} mesh.")


def _trimesh():
    """trimesh, imported on first use: its import (scipy.spatial and more) is half a second of the
    app's start, which reads no mesh file when it opens on SynthFaces and the bundled model."""
    import trimesh

    return trimesh


def _load(path: Path, suffix: str):
    """The file as a ``trimesh.Trimesh`` (``process=False``: nothing merged or reordered). A PLY
    goes through trimesh's PLY reader and the Trimesh constructor directly: ``trimesh.load`` would
    wrap the mesh in a Scene and deep-copy it back out, 20 times the parse (2.6 against 0.12 ms
    for a 5,023-vertex binary PLY), which a folder of meshes pays for every file."""
    trimesh = _trimesh()
    if suffix == ".ply":
        with open(path, "rb") as file:
            data = file.read()
        with _TRIMESH_LOCK:
            return trimesh.Trimesh(**trimesh.exchange.ply.load_ply(io.BytesIO(data)), process=False)
    with _TRIMESH_LOCK:
        return trimesh.load(path, file_type=suffix[1:], process=False, force="mesh",
                            **({"maintain_order": True} if suffix == ".obj" else {}))


def _suffix_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise MeshError(
            f"{path} has the unsupported extension '{path.suffix}': expected one of "
            f"{', '.join(MESH_SUFFIXES)}."
        )
    return suffix


def _ply_header_counts(path: Path) -> dict[str, int]:
    """Element counts declared in a PLY header (``{"vertex": n, "face": m}``)."""
    counts: dict[str, int] = {}
    with open(path, "rb") as handle:
        for _ in range(200):
            line = handle.readline()
            if not line or line.strip() == b"end_header":
                break
            match = re.match(rb"element\s+(\w+)\s+(\d+)", line.strip())
            if match:
                counts[match.group(1).decode()] = int(match.group(2))
    return counts


def _merge_soup(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge identical positions of a triangle soup, keeping the order of first appearance."""
    unique, first, inverse = np.unique(vertices, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return unique[order], rank[inverse.reshape(-1)][triangles]


def _obj_vertex_count(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.startswith(b"v "))


def _read_obj_in_file_order(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and fan-triangulated faces of an OBJ exactly in the file's order.

    trimesh regroups an OBJ with several ``usemtl`` sections by material, duplicating and
    reordering vertices; registered meshes (ICT-FaceKit's among them) need the file's order.
    """
    vertices: list[list[float]] = []
    triangles: list[list[int]] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("v "):
                vertices.append([float(value) for value in line.split()[1:4]])
            elif line.startswith("f "):
                corners = [int(token.split("/")[0]) for token in line.split()[1:]]
                corners = [c - 1 if c > 0 else len(vertices) + c for c in corners]
                triangles.extend([corners[0], corners[i], corners[i + 1]] for i in range(1, len(corners) - 1))
    return np.asarray(vertices, dtype=np.float64).reshape(-1, 3), np.asarray(triangles, dtype=np.int64).reshape(-1, 3)


def read_mesh(path: str | os.PathLike, unit_scale: float = 1.0) -> FaceMesh:
    """Read a mesh file and validate it.

    Args:
        path: an .obj, .ply, .stl or .off file.
        unit_scale: multiplies the coordinates to get millimetres (1000 for a file in metres,
            10 for centimetres).

    Raises:
        MeshError: the file is missing, empty, truncated or unparsable, has no vertices, has
            NaN or infinite coordinates, or faces that refer to missing vertices.
    """
    path = Path(path)
    if not path.exists():
        raise MeshError(f"{path} does not exist: expected a mesh file ({', '.join(MESH_SUFFIXES)}).")
    if path.is_dir():
        raise MeshError(f"{path} is a folder: expected a mesh file ({', '.join(MESH_SUFFIXES)}).")
    suffix = _suffix_of(path)
    if path.stat().st_size == 0:
        raise MeshError(f"{path} is empty: expected a {suffix[1:].upper()} mesh with vertices and faces.")
    kind = suffix[1:].upper()
    try:
        loaded = _load(path, suffix)
    except IndexError:
        if suffix == ".obj":  # a face line naming a vertex past the last one read
            raise MeshError(
                f"{path} has faces that refer to vertices it does not contain: the file may be truncated."
            ) from None
        raise MeshError(_unreadable(path, kind)) from None
    except OSError as error:  # the system refused the read (too many open files, an I/O error): not the contents
        raise MeshError(f"{path} could not be read: the system refused it ({error.strerror or error}).") from None
    except Exception as error:  # trimesh raises many types, with parser internals as messages, for unparsable input
        # The user gets one sentence; the parser's own exception stays in the debug log and as the cause.
        log.debug("%s: the %s parser raised %r", path, kind, error, exc_info=True)
        raise MeshError(_unreadable(path, kind)) from error
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
    triangles = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    if suffix == ".ply":
        declared = _ply_header_counts(path)
        if declared.get("vertex", 0) > len(vertices) or declared.get("face", 0) > len(triangles):
            raise MeshError(
                f"{path} is truncated: its header declares {declared.get('vertex', 0)} vertices and "
                f"{declared.get('face', 0)} faces, but only {len(vertices)} and {len(triangles)} could be read."
            )
    if suffix == ".obj" and len(vertices) != _obj_vertex_count(path):
        try:
            vertices, triangles = _read_obj_in_file_order(path)
        except ValueError:
            raise MeshError(f"{path} could not be read as OBJ: a 'v' or 'f' line does not hold numbers as "
                            "'v x y z' or 'f a b c' lines do.") from None
    if suffix == ".stl" and len(vertices):
        vertices, triangles = _merge_soup(vertices, triangles)
    scaled = vertices * unit_scale
    with np.errstate(invalid="ignore"):
        beyond = np.abs(scaled) > FLOAT32_LIMIT
        # per vertex only when some coordinate is out of range (inf is; NaN is not): the common
        # file pays one pass
        too_large = np.isfinite(scaled).all(axis=1) & beyond.any(axis=1) if beyond.any() else None
    if too_large is not None and too_large.any():
        first = int(np.flatnonzero(too_large)[0])
        raise MeshError(
            f"{path} has {int(too_large.sum())} vertices with coordinates beyond +-3.4e38 (first at vertex {first}, "
            f"{np.abs(scaled[first]).max():.3g}), too large for 32-bit floats: expected coordinates in millimetres."
        )
    mesh = FaceMesh(scaled.astype(np.float32), triangles, name=str(path))
    return validate_mesh(mesh)


def write_mesh(
    mesh: FaceMesh,
    path: str | os.PathLike,
    vertex_scalars: dict[str, np.ndarray] | None = None,
    binary: bool = True,
) -> Path:
    """Write ``mesh`` atomically; the format follows the extension.

    Args:
        vertex_scalars: per-vertex values (each shaped (n,)) written as extra PLY vertex
            properties, e.g. ``{"error": per_vertex_error_mm}``. Only PLY can hold them.
        binary: binary or ASCII PLY (ignored for the other formats; STL is always binary).
    """
    path = Path(path)
    suffix = _suffix_of(path)
    if vertex_scalars and suffix != ".ply":
        raise MeshError(f"{path}: per-vertex values can only be written to PLY, not {suffix[1:].upper()}.")
    bad = 0 if np.isfinite(mesh.vertices).all() else int((~np.isfinite(mesh.vertices).all(axis=1)).sum())
    if bad:
        raise MeshError(f"{path} was not written: {bad} of the mesh's {mesh.n_vertices} vertices are NaN or infinite, "
                        "and facelab never writes a mesh with a non-finite vertex.")
    trimesh = _trimesh()
    tm = trimesh.Trimesh(mesh.vertices.astype(np.float64), mesh.triangles, process=False)
    for name, values in (vertex_scalars or {}).items():
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        if values.shape[0] != mesh.n_vertices:
            raise ValueError(f"vertex scalar {name!r} has {values.shape[0]} values for {mesh.n_vertices} vertices")
        tm.vertex_attributes[name] = values
    with _TRIMESH_LOCK:
        if suffix == ".ply":
            data = trimesh.exchange.ply.export_ply(tm, encoding="binary" if binary else "ascii",
                                                   include_attributes=True)
        elif suffix == ".obj":
            data = trimesh.exchange.obj.export_obj(tm, include_normals=False, include_texture=False,
                                                   include_color=False)
        else:
            data = trimesh.exchange.export.export_mesh(tm, None, file_type=suffix[1:])
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def read_ply_vertex_property(path: str | os.PathLike, name: str) -> np.ndarray:
    """Read one extra per-vertex property (e.g. ``"error"``) from a PLY written by :func:`write_mesh`."""
    path = Path(path)
    with _TRIMESH_LOCK:
        loaded = _trimesh().load(path, file_type="ply", process=False, force="mesh")
    raw = loaded.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
    if raw is None or name not in raw.dtype.names:
        raise MeshError(f"{path} has no per-vertex property '{name}'.")
    return np.asarray(raw[name], dtype=np.float32).reshape(-1)
