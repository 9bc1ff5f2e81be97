"""The leading principal directions of many faces, from the smaller of two Gram matrices.

A full SVD of thousands of flattened faces (thousands of columns each) takes tens of seconds on
two cores; the eigenvectors of the smaller Gram matrix give the same leading directions in a
few: the sample's (s, s) one when there are fewer faces than coordinates, else the (d, d) one.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def principal_directions(centred: np.ndarray, k: int) -> np.ndarray:
    """The top ``k`` right singular vectors of ``centred`` (s, d), as rows (k', d) with k' <= k;
    directions of zero variance (fewer faces than ``k``) are dropped.

    Args:
        centred: the samples, each row a flattened face minus the mean face.
        k: how many directions at most.

    Shapes:
        centred (s, d) -> (k', d), orthonormal rows, the largest variance first.
    """
    s, d = centred.shape
    small = centred @ centred.T if s <= d else centred.T @ centred
    k = min(k, len(small))
    values, vectors = scipy.linalg.eigh(small, subset_by_index=(len(small) - k, len(small) - 1))
    values, vectors = values[::-1], vectors[:, ::-1]
    keep = values > values[0] * 1e-12
    values, vectors = values[keep], vectors[:, keep]
    if s > d:
        return np.ascontiguousarray(vectors.T)
    return (centred.T @ vectors / np.sqrt(values)).T
