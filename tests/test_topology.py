"""Adjacency and Laplacians of a template's topology."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import trimesh

from facelab.mesh import combinatorial_laplacian, normalized_laplacian, scaled_laplacian, vertex_adjacency
from facelab.mesh.topology import largest_eigenvalue


def test_adjacency_of_two_triangles():
    adjacency = vertex_adjacency(np.array([[0, 1, 2], [0, 2, 3]]), 4).toarray()
    expected = np.array([[0, 1, 1, 1], [1, 0, 1, 0], [1, 1, 0, 1], [1, 0, 1, 0]])
    np.testing.assert_array_equal(adjacency, expected)


def test_combinatorial_laplacian_is_degree_minus_adjacency(grid_mesh):
    laplacian = combinatorial_laplacian(grid_mesh.triangles, grid_mesh.n_vertices).toarray()
    adjacency = vertex_adjacency(grid_mesh.triangles, grid_mesh.n_vertices).toarray()
    np.testing.assert_array_equal(laplacian, np.diag(adjacency.sum(1)) - adjacency)
    np.testing.assert_allclose(laplacian.sum(axis=1), 0)
    assert np.allclose(laplacian, laplacian.T)


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_scaled_laplacian_spectrum_is_within_minus_one_and_one(kind):
    sphere = trimesh.creation.icosphere(subdivisions=3)  # 642 vertices: the sparse eigensolver path
    n = len(sphere.vertices)
    scaled = scaled_laplacian(sphere.faces, n, kind)
    assert isinstance(scaled, sp.csr_matrix) and scaled.dtype == np.float32 and scaled.shape == (n, n)
    eigenvalues = np.linalg.eigvalsh(scaled.toarray().astype(np.float64))
    assert eigenvalues.max() == pytest.approx(1.0, abs=1e-4)
    assert eigenvalues.min() >= -1.0 - 1e-4
    base = (combinatorial_laplacian if kind == "combinatorial" else normalized_laplacian)(sphere.faces, n)
    expected = 2 * base.toarray() / np.linalg.eigvalsh(base.toarray())[-1] - np.eye(n)
    np.testing.assert_allclose(scaled.toarray(), expected, atol=1e-5)


def test_scaled_laplacian_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE_DIR", str(tmp_path))
    sphere = trimesh.creation.icosphere(subdivisions=2)
    tri = np.asarray(sphere.faces)[:-1]  # a topology no other test has used
    first = scaled_laplacian(tri, len(sphere.vertices))
    assert len(list((tmp_path / "laplacians").glob("*.npz"))) == 1
    second = scaled_laplacian(tri, len(sphere.vertices))
    assert (first != second).nnz == 0


def test_largest_eigenvalue_matches_dense():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    laplacian = combinatorial_laplacian(sphere.faces, len(sphere.vertices))
    assert largest_eigenvalue(laplacian) == pytest.approx(np.linalg.eigvalsh(laplacian.toarray())[-1], rel=1e-6)


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown Laplacian kind"):
        scaled_laplacian(np.array([[0, 1, 2]]), 3, "cotangent")
