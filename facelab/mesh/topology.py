"""Graph operators of a template's topology: adjacency and Laplacians.

The paper (Sec. 2.1) defines L = D - A, the combinatorial Laplacian of the mesh graph, and uses
the scaled Laplacian ``2 L / lambda_max - I`` whose spectrum lies in [-1, 1], as Chebyshev
polynomials require. CoMA's code uses the normalised Laplacian ``I - D^-1/2 A D^-1/2`` instead;
both are offered, the paper's is the default.

Scaled Laplacians are cached per template by a hash of its triangles, in memory and in the user
cache directory (the largest eigenvalue of a 26k-vertex Laplacian takes a moment).
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from facelab.atomic import atomic_path
from facelab.mesh.validation import triangles_hash
from facelab.paths import cache_dir

LaplacianKind = Literal["combinatorial", "normalized"]
LAPLACIAN_KINDS: tuple[str, ...] = ("combinatorial", "normalized")


def vertex_adjacency(triangles: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """Symmetric 0/1 adjacency (n, n) of the mesh graph: i ~ j when they share an edge."""
    triangles = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    rows = triangles[:, [0, 1, 2, 1, 2, 0]].reshape(-1)
    cols = triangles[:, [1, 2, 0, 0, 1, 2]].reshape(-1)
    adjacency = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n_vertices, n_vertices)).tocsr()
    adjacency.data[:] = 1.0  # an edge shared by two triangles was summed twice
    adjacency.setdiag(0)
    adjacency.eliminate_zeros()
    return adjacency


def combinatorial_laplacian(triangles: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """L = D - A (the paper's definition), (n, n) float64."""
    adjacency = vertex_adjacency(triangles, n_vertices)
    degree = np.asarray(adjacency.sum(axis=1)).reshape(-1)
    return (sp.diags(degree) - adjacency).tocsr()


def normalized_laplacian(triangles: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """L = I - D^-1/2 A D^-1/2 (CoMA's code), (n, n) float64; isolated vertices get 0 rows."""
    adjacency = vertex_adjacency(triangles, n_vertices)
    degree = np.asarray(adjacency.sum(axis=1)).reshape(-1)
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(degree), 0.0)
    identity = sp.diags((degree > 0).astype(np.float64))
    return (identity - sp.diags(inv_sqrt) @ adjacency @ sp.diags(inv_sqrt)).tocsr()


def largest_eigenvalue(laplacian: sp.spmatrix) -> float:
    """The largest eigenvalue of a symmetric positive semi-definite matrix."""
    n = laplacian.shape[0]
    if n < 64:
        return float(np.linalg.eigvalsh(laplacian.toarray())[-1])
    try:
        value = spla.eigsh(laplacian, k=1, which="LA", return_eigenvectors=False, tol=1e-6)[0]
    except spla.ArpackNoConvergence:
        value = spla.eigsh(laplacian, k=1, which="LA", return_eigenvectors=False, tol=1e-4, ncv=64, maxiter=20 * n)[0]
    return float(value)


def _laplacian(triangles: np.ndarray, n_vertices: int, kind: str) -> sp.csr_matrix:
    if kind == "combinatorial":
        return combinatorial_laplacian(triangles, n_vertices)
    if kind == "normalized":
        return normalized_laplacian(triangles, n_vertices)
    raise ValueError(f"unknown Laplacian kind {kind!r}: expected one of {', '.join(LAPLACIAN_KINDS)}")


def scaled_laplacian(triangles: np.ndarray, n_vertices: int, kind: str = "combinatorial") -> sp.csr_matrix:
    """``2 L / lambda_max - I`` as float32 CSR (n, n), cached by topology hash.

    Args:
        kind: ``"combinatorial"`` (L = D - A, the paper's) or ``"normalized"`` (CoMA's code).
    """
    if kind not in LAPLACIAN_KINDS:
        raise ValueError(f"unknown Laplacian kind {kind!r}: expected one of {', '.join(LAPLACIAN_KINDS)}")
    triangles = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    return _scaled_laplacian_cached(triangles_hash(triangles), n_vertices, kind, _Hashless(triangles)).copy()


class _Hashless:
    """Carries the triangles through ``lru_cache`` without hashing them (the hash is the key)."""

    def __init__(self, triangles: np.ndarray) -> None:
        self.triangles = triangles

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Hashless)


@functools.lru_cache(maxsize=16)
def _scaled_laplacian_cached(topology: str, n_vertices: int, kind: str, carrier: _Hashless) -> sp.csr_matrix:
    path = cache_dir("laplacians") / f"{topology}-{n_vertices}-{kind}.npz"
    if path.exists():
        try:
            return sp.load_npz(path).tocsr().astype(np.float32)
        except Exception:  # a damaged cache file is recomputed, never trusted
            path.unlink(missing_ok=True)
    laplacian = _laplacian(carrier.triangles, n_vertices, kind)
    lambda_max = largest_eigenvalue(laplacian)
    scaled = (2.0 / lambda_max) * laplacian - sp.identity(n_vertices, format="csr")
    scaled = scaled.tocsr().astype(np.float32)
    with atomic_path(path) as tmp:
        sp.save_npz(tmp, scaled)
    return scaled
