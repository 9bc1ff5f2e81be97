"""Checks on mesh contents, each failing with one sentence that says what is wrong."""

from __future__ import annotations

import hashlib

import numpy as np

from facelab.errors import MeshError, TopologyMismatchError
from facelab.mesh.face_mesh import FaceMesh


def validate_mesh(mesh: FaceMesh) -> FaceMesh:
    """Check that ``mesh`` has vertices, finite coordinates and valid triangle indices.

    Returns the mesh itself so calls can be chained. Raises :class:`MeshError`.
    """
    if mesh.n_vertices == 0:
        raise MeshError(f"{mesh.name} has no vertices: expected a face mesh with vertices and triangles.")
    if not np.isfinite(mesh.vertices).all():
        bad = np.flatnonzero(~np.isfinite(mesh.vertices).all(axis=1))
        raise MeshError(
            f"{mesh.name} has {bad.size} vertices with NaN or infinite coordinates "
            f"(first at vertex {int(bad[0])}): expected finite coordinates in millimetres."
        )
    if mesh.n_triangles:
        low, high = int(mesh.triangles.min()), int(mesh.triangles.max())
        if low < 0 or high >= mesh.n_vertices:
            index = low if low < 0 else high
            raise MeshError(
                f"{mesh.name} has faces that refer to vertex {index}, but it has only "
                f"{mesh.n_vertices} vertices (0 to {mesh.n_vertices - 1}): the file may be truncated."
            )
    return mesh


def canonical_triangles(triangles: np.ndarray) -> np.ndarray:
    """The triangle list with each row's indices sorted and the rows sorted.

    Two files of one registered topology may list triangles in another order or start a
    triangle at another corner (exporters do both); the set of triangles is what matters.
    """
    rows = np.sort(np.asarray(triangles, dtype=np.int64).reshape(-1, 3), axis=1)
    return np.ascontiguousarray(rows[np.lexsort(rows.T[::-1])])


def triangles_hash(triangles: np.ndarray) -> str:
    """A short stable fingerprint of a topology: the same for any order of the same triangles."""
    rows = canonical_triangles(triangles)
    return hashlib.sha256(str(rows.shape).encode() + rows.tobytes()).hexdigest()[:16]


def check_matches_template(mesh: FaceMesh, template_triangles: np.ndarray, template_vertices: int) -> FaceMesh:
    """Check that ``mesh`` is registered to a template: same vertex count and triangle list.

    Raises :class:`TopologyMismatchError` with the counts the template expects.
    """
    template_triangles = np.asarray(template_triangles)
    if mesh.n_vertices != template_vertices:
        raise TopologyMismatchError(
            f"{mesh.name}: expected {template_vertices} vertices in the template's order, "
            f"got {mesh.n_vertices}; the mesh is not registered to this model's template."
        )
    if mesh.triangles.shape != template_triangles.shape:
        detail = f"expected {len(template_triangles)} triangles, got {mesh.n_triangles}"
    elif np.array_equal(mesh.triangles, template_triangles):
        return mesh
    else:
        theirs = set(map(tuple, np.sort(template_triangles, axis=1).tolist()))
        differing = sum(row not in theirs for row in map(tuple, np.sort(mesh.triangles, axis=1).tolist()))
        if differing == 0 and triangles_hash(mesh.triangles) == triangles_hash(template_triangles):
            return mesh
        detail = (f"{max(differing, 1)} of its {mesh.n_triangles} triangles are not among the template's "
                  "(in any order)")
    raise TopologyMismatchError(
        f"{mesh.name}: {detail}; expected the template's triangle list "
        "(the same vertex count alone does not make a registered mesh)."
    )
