"""The meshes the benchmarks run on: the SynthFaces template and generated faces of any vertex count.

The issue asks for the CoMA size (5,023 vertices) and the FaceScape size (26,317). No real
template of those sizes ships with facelab, so :func:`generated_face` builds one: a height field
shaped like a face (an elongated dome with a nose bump) over a regular grid, triangulated with
one diagonal per cell, so that every interior vertex has exactly 6 neighbours, as on a
registered face scan. A vertex count that is not a product of two grid sides is reached exactly
by a last, partial row of vertices stitched to the row below: the result stays a single
manifold disk.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

COMA_VERTICES = 5_023
FACESCAPE_VERTICES = 26_317


@dataclass(frozen=True)
class BenchmarkMesh:
    """A triangle mesh with a name for the result tables.

    ``vertices`` (n, 3) float32 in mm, ``triangles`` (m, 3) int64.
    """

    name: str
    vertices: np.ndarray
    triangles: np.ndarray

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)


def _grid_triangles(rows: int, cols: int) -> list[tuple[int, int, int]]:
    """Two triangles per cell of a rows x cols vertex grid (vertex ``r * cols + c``), counter-clockwise."""
    triangles = []
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b, d, e = r * cols + c, r * cols + c + 1, (r + 1) * cols + c, (r + 1) * cols + c + 1
            triangles += [(a, b, e), (a, e, d)]
    return triangles


def _partial_row_triangles(rows: int, cols: int, extra: int) -> list[tuple[int, int, int]]:
    """Stitch ``extra`` (>= 2) vertices placed above the first ``extra`` columns of the top row.

    The same diagonal as the full cells, so the partial row looks like ``extra - 1`` more cells.
    """
    below = (rows - 1) * cols
    above = rows * cols
    triangles = []
    for c in range(extra - 1):
        a, b, d, e = below + c, below + c + 1, above + c, above + c + 1
        triangles += [(a, b, e), (a, e, d)]
    return triangles


@functools.lru_cache(maxsize=8)
def generated_face(n_vertices: int) -> BenchmarkMesh:
    """A face-like manifold triangle mesh (a disk) of exactly ``n_vertices`` vertices (>= 9).

    The grid is about 3:4 (width : height, as a face) with vertex spacing chosen so the face is
    ~150 mm wide whatever the count; interior vertices have 6 neighbours.
    """
    if n_vertices < 9:
        raise ValueError(f"a generated face needs at least 9 vertices, got {n_vertices}")
    cols = max(3, int(round(math.sqrt(n_vertices * 3 / 4))))
    rows, extra = divmod(n_vertices, cols)
    if extra == 1:  # a single vertex cannot form a triangle: borrow one from the last full row
        rows, extra = rows - 1, cols + 1
        # cols + 1 vertices above a row of cols: stitch cols of them as a partial row, and the last
        # one as a fan to the row's last vertex and its neighbour above.
    spacing = 150.0 / (cols - 1)
    positions = [(c * spacing, r * spacing) for r in range(rows) for c in range(cols)]
    positions += [(c * spacing, rows * spacing) for c in range(min(extra, cols))]
    triangles = _grid_triangles(rows, cols)
    if extra >= 2:
        triangles += _partial_row_triangles(rows, cols, min(extra, cols))
    if extra == cols + 1:  # the borrowed vertex: right of the partial (full-width) row's end
        positions.append((cols * spacing, rows * spacing))
        last_below, last_above, new = rows * cols - 1, rows * cols + cols - 1, rows * cols + cols
        triangles.append((last_below, new, last_above))
    xy = np.asarray(positions, dtype=np.float64)
    xy -= xy.mean(axis=0)
    width, height = np.ptp(xy[:, 0]) / 2, max(np.ptp(xy[:, 1]) / 2, 1e-9)
    u, v = xy[:, 0] / width, xy[:, 1] / height
    dome = 60.0 * np.sqrt(np.clip(1.0 - 0.6 * u**2 - 0.4 * v**2, 0.0, None))
    nose = 25.0 * np.exp(-((u / 0.12) ** 2 + ((v - 0.05) / 0.3) ** 2))
    vertices = np.column_stack([xy, dome + nose]).astype(np.float32)
    return BenchmarkMesh(f"generated face ({n_vertices:,} vertices)", vertices, np.asarray(triangles, dtype=np.int64))


def synthfaces_template() -> BenchmarkMesh:
    """The SynthFaces template (facelab's built-in face, the bundled model's topology)."""
    from facelab.data.synth.template import face_template

    vertices, triangles = face_template()
    return BenchmarkMesh(f"SynthFaces template ({len(vertices):,} vertices)", np.asarray(vertices, dtype=np.float32),
                         np.asarray(triangles, dtype=np.int64))


def benchmark_meshes(sizes: tuple[str | int, ...] = ("template", COMA_VERTICES, FACESCAPE_VERTICES)) -> list[BenchmarkMesh]:
    """The meshes for ``sizes``: ``"template"`` or a vertex count (a generated face)."""
    return [synthfaces_template() if size == "template" else generated_face(int(size)) for size in sizes]


def manifold_problems(triangles: np.ndarray, n_vertices: int) -> list[str]:
    """Why a triangle mesh is not a connected, consistently oriented 2-manifold (with boundary).

    Empty when every edge lies on one or two triangles (two: traversed in opposite directions),
    every vertex is used and its triangles form one fan (no pinched vertex), and the mesh is one
    connected piece.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    triangles = np.asarray(triangles, dtype=np.int64)
    problems = []
    directed = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    if len(np.unique(directed, axis=0)) != len(directed):
        problems.append("a directed edge appears twice (inconsistent orientation or a non-manifold edge)")
    undirected, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    if counts.max(initial=0) > 2:
        problems.append(f"{int((counts > 2).sum())} edges lie on more than two triangles")
    used = np.zeros(n_vertices, dtype=bool)
    used[triangles.ravel()] = True
    if not used.all():
        problems.append(f"{int((~used).sum())} vertices belong to no triangle")
    # A vertex's fan is one piece when its triangles, linked by shared edges through the vertex,
    # are connected: count the components of each vertex's triangle-adjacency.
    corners = np.repeat(np.arange(len(triangles)), 3)
    for vertex_triangles in _triangles_per_vertex(triangles, n_vertices, corners):
        if len(vertex_triangles) > 1 and _fan_pieces(triangles[vertex_triangles]) > 1:
            problems.append("a vertex is pinched (its triangles form more than one fan)")
            break
    adjacency = sp.coo_matrix((np.ones(len(undirected)), (undirected[:, 0], undirected[:, 1])),
                              shape=(n_vertices, n_vertices))
    pieces, _ = connected_components(adjacency, directed=False)
    if pieces != 1:
        problems.append(f"the mesh has {pieces} connected pieces")
    return problems


def _triangles_per_vertex(triangles: np.ndarray, n_vertices: int, corners: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(triangles.ravel(), kind="stable")
    bounds = np.searchsorted(triangles.ravel()[order], np.arange(n_vertices + 1))
    return [corners[order[bounds[v]:bounds[v + 1]]] for v in range(n_vertices)]


def _fan_pieces(fan: np.ndarray) -> int:
    """Connected pieces of a set of triangles around one vertex, linked by shared edges."""
    parent = list(range(len(fan)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(fan)):
        for j in range(i + 1, len(fan)):
            if len(set(fan[i].tolist()) & set(fan[j].tolist())) == 2:
                parent[root(i)] = root(j)
    return len({root(i) for i in range(len(fan))})


def mean_neighbours(triangles: np.ndarray, n_vertices: int) -> float:
    """Average vertex degree (edges per vertex): ~6 on a registered face mesh."""
    edges = np.unique(np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]),
                              axis=1), axis=0)
    return 2 * len(edges) / n_vertices
