"""Quadric-error mesh decimation (Garland and Heckbert), as CoMA builds its template hierarchy.

The decimation itself is VTK's ``vtkQuadricDecimation`` through pyvista (already a facelab
dependency): each edge collapse is chosen by the quadric error it adds, so flat regions lose
vertices first and the face's features (nose, lips, eyelids) keep theirs. facelab only asks for
the number of vertices to keep; the sampling matrices between the levels are computed in
:mod:`facelab.mesh.hierarchy`.
"""

from __future__ import annotations

import numpy as np

from facelab.errors import FacelabError


def quadric_decimation(vertices: np.ndarray, triangles: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """A coarser mesh with about ``1 / factor`` of the vertices, by quadric-error edge collapses.

    Args:
        vertices: (n, 3) positions.
        triangles: (m, 3) vertex indices.
        factor: how many times fewer vertices to keep (CoMA uses 4 per level).

    Returns:
        (vertices (k, 3) float64, triangles (t, 3) int64) of the decimated mesh, without unused
        vertices. Vertex positions are the quadric-optimal ones (not a subset of the input).

    Raises:
        FacelabError: the mesh is too small to decimate by ``factor``.
    """
    import pyvista as pv

    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    target = int(round(len(vertices) / factor))
    if target < 4 or len(triangles) < 4:
        raise FacelabError(f"a mesh of {len(vertices)} vertices is too small to downsample {factor:g} times "
                           "(fewer than 4 vertices would be left): use fewer or smaller downsampling factors.")
    mesh = pv.PolyData.from_regular_faces(vertices, triangles)
    # VTK's target is a fraction of triangles to remove; on a closed or nearly closed surface the
    # vertex count follows the triangle count (V ~ T / 2), so the same fraction applies.
    coarse = mesh.decimate(1.0 - 1.0 / factor).clean(point_merging=False)
    coarse_triangles = np.asarray(coarse.regular_faces, dtype=np.int64).reshape(-1, 3)
    return np.asarray(coarse.points, dtype=np.float64), coarse_triangles
