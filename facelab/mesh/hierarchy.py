"""A CoMA-style hierarchy of templates for mesh pooling, computed once per template and cached.

Level 0 is the template; level i + 1 is level i decimated ``factors[i]`` times by quadric error
(:func:`~facelab.mesh.decimation.quadric_decimation`). Between consecutive levels, two sparse
matrices (:func:`~facelab.mesh.barycentric.barycentric_matrix`): ``down[i]`` (n_{i+1}, n_i) reads
level i at the coarse vertices, ``up[i]`` (n_i, n_{i+1}) reads level i + 1 at the fine vertices.

Decimation depends on the template's shape, not only on its triangles, so the cache key is the
topology hash, a hash of the vertex positions and the factors. A second entry keyed by the
topology and factors alone remembers the last hierarchy built for them, so that a model whose
shape is not at hand (loading a checkpoint by its triangles only) still finds it on the machine
that trained it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from facelab.atomic import atomic_path, atomic_write_text
from facelab.errors import FacelabError
from facelab.mesh.barycentric import barycentric_matrix
from facelab.mesh.decimation import quadric_decimation
from facelab.mesh.validation import triangles_hash
from facelab.paths import cache_dir

HIERARCHY_VERSION = 1


@dataclass(frozen=True)
class MeshHierarchy:
    """Templates from fine to coarse and the sampling matrices between them."""

    vertices: tuple[np.ndarray, ...]     # per level, (n_i, 3) float32
    triangles: tuple[np.ndarray, ...]    # per level, (m_i, 3) int64
    down: tuple[sp.csr_matrix, ...]      # level i -> i + 1, (n_{i+1}, n_i) float32
    up: tuple[sp.csr_matrix, ...]        # level i + 1 -> i, (n_i, n_{i+1}) float32

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.vertices)


def mesh_hierarchy(triangles: np.ndarray, factors: tuple[int, ...], vertices: np.ndarray | None = None) -> MeshHierarchy:
    """The hierarchy of a template decimated by ``factors`` (cached in the user cache directory).

    Args:
        triangles: the template's (m, 3) triangles.
        factors: one decimation factor per level, e.g. (4, 4, 4, 4).
        vertices: the template's (n, 3) shape; without it, the hierarchy last built for this
            topology and these factors is read from the cache.

    Raises:
        FacelabError: no shape was given and none is cached, or the mesh is too small.
    """
    triangles = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    factors = tuple(int(f) for f in factors)
    topology = triangles_hash(triangles)
    folder = cache_dir("hierarchies")
    alias = folder / f"{topology}-{'x'.join(map(str, factors))}.json"
    if vertices is None:
        if not alias.exists():
            raise FacelabError(
                f"this network downsamples its template ({factors}) and needs the template's shape to rebuild the "
                "coarse meshes: pass template_vertices (a checkpoint holds them as its template)."
            )
        path = folder / json.loads(alias.read_text())["file"]
        cached = _read(path)
        if cached is None:
            raise FacelabError(f"the cached mesh hierarchy {path} is damaged: pass template_vertices to rebuild it.")
        return cached
    vertices = np.asarray(vertices, dtype=np.float32)
    shape_digest = hashlib.sha256(np.ascontiguousarray(vertices).tobytes()).hexdigest()[:16]
    path = folder / f"{topology}-{shape_digest}-{'x'.join(map(str, factors))}-v{HIERARCHY_VERSION}.npz"
    hierarchy = _read(path) if path.exists() else None
    if hierarchy is None:
        hierarchy = build_mesh_hierarchy(vertices, triangles, factors)
        _write(path, hierarchy)
    atomic_write_text(alias, json.dumps({"file": path.name}))
    return hierarchy


def build_mesh_hierarchy(vertices: np.ndarray, triangles: np.ndarray, factors: tuple[int, ...]) -> MeshHierarchy:
    """Decimate level by level and compute the sampling matrices (no cache)."""
    levels_v = [np.asarray(vertices, dtype=np.float64)]
    levels_t = [np.asarray(triangles, dtype=np.int64).reshape(-1, 3)]
    down, up = [], []
    for factor in factors:
        fine_v, fine_t = levels_v[-1], levels_t[-1]
        coarse_v, coarse_t = quadric_decimation(fine_v, fine_t, factor)
        down.append(barycentric_matrix(coarse_v, fine_v, fine_t))
        up.append(barycentric_matrix(fine_v, coarse_v, coarse_t))
        levels_v.append(coarse_v)
        levels_t.append(coarse_t)
    return MeshHierarchy(tuple(v.astype(np.float32) for v in levels_v), tuple(levels_t), tuple(down), tuple(up))


def _write(path, hierarchy: MeshHierarchy) -> None:
    arrays: dict[str, np.ndarray] = {}
    for i, (v, t) in enumerate(zip(hierarchy.vertices, hierarchy.triangles)):
        arrays[f"vertices_{i}"], arrays[f"triangles_{i}"] = v, t
    for name, matrices in (("down", hierarchy.down), ("up", hierarchy.up)):
        for i, matrix in enumerate(matrices):
            arrays[f"{name}_{i}_data"], arrays[f"{name}_{i}_indices"] = matrix.data, matrix.indices
            arrays[f"{name}_{i}_indptr"], arrays[f"{name}_{i}_shape"] = matrix.indptr, np.array(matrix.shape)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def _read(path) -> MeshHierarchy | None:
    try:
        with np.load(path) as arrays:
            levels = sum(1 for key in arrays.files if key.startswith("vertices_"))

            def matrix(name: str, i: int) -> sp.csr_matrix:
                return sp.csr_matrix((arrays[f"{name}_{i}_data"], arrays[f"{name}_{i}_indices"],
                                      arrays[f"{name}_{i}_indptr"]), shape=tuple(arrays[f"{name}_{i}_shape"]))

            return MeshHierarchy(
                tuple(arrays[f"vertices_{i}"] for i in range(levels)),
                tuple(arrays[f"triangles_{i}"] for i in range(levels)),
                tuple(matrix("down", i) for i in range(levels - 1)),
                tuple(matrix("up", i) for i in range(levels - 1)),
            )
    except Exception:  # a damaged cache file is rebuilt, never trusted
        return None
