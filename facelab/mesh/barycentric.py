"""Barycentric projection of points onto a triangle mesh, as a sparse interpolation matrix.

CoMA up-samples a coarse mesh by projecting each fine vertex onto its closest coarse triangle
and interpolating the triangle's three corners with the barycentric weights of that projection.
facelab builds both of its sampling matrices this way (down: coarse vertices onto the fine mesh;
up: fine vertices onto the coarse mesh), since quadric decimation places coarse vertices where
no fine vertex is.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def barycentric_matrix(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> sp.csr_matrix:
    """(len(points), len(vertices)) float32 CSR: row i interpolates the mesh at points[i]'s projection.

    Each row holds the barycentric weights (non-negative, summing to 1) of the closest point on
    the closest triangle, found with VTK's static cell locator.
    """
    import pyvista as pv

    points = np.asarray(points, dtype=np.float64)
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    mesh = pv.PolyData.from_regular_faces(vertices, triangles)
    cells, closest = mesh.find_closest_cell(points, return_closest_point=True)
    corners = triangles[np.asarray(cells, dtype=np.int64)]
    weights = _barycentric_weights(closest, vertices[corners[:, 0]], vertices[corners[:, 1]], vertices[corners[:, 2]])
    rows = np.repeat(np.arange(len(points)), 3)
    matrix = sp.csr_matrix((weights.reshape(-1), (rows, corners.reshape(-1))), shape=(len(points), len(vertices)))
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix.astype(np.float32)


def _barycentric_weights(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(k, 3) weights of p in triangles (a, b, c), clipped to the triangle and normalised."""
    v0, v1, v2 = b - a, c - a, p - a
    d00 = np.einsum("ij,ij->i", v0, v0)
    d01 = np.einsum("ij,ij->i", v0, v1)
    d11 = np.einsum("ij,ij->i", v1, v1)
    d20 = np.einsum("ij,ij->i", v2, v0)
    d21 = np.einsum("ij,ij->i", v2, v1)
    denominator = d00 * d11 - d01 * d01
    degenerate = np.abs(denominator) < 1e-30
    denominator = np.where(degenerate, 1.0, denominator)
    v = (d11 * d20 - d01 * d21) / denominator
    w = (d00 * d21 - d01 * d20) / denominator
    weights = np.stack([1.0 - v - w, v, w], axis=1)
    weights[degenerate] = 1.0 / 3.0  # a sliver triangle: its corners' mean
    # The closest point lies on the triangle, so negative weights are rounding: clip, renormalise.
    weights = np.clip(weights, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)
