"""Fit the expression and identity subspaces of the ``identity-preserving`` variant.

``U``: the main directions of the displacements expressive - neutral over a seeded sample of the
training pairs (not centred: no displacement is the neutral's own). ``W``: the main directions of
the training subjects' neutral faces about their mean, after removing their part inside ``U``.
Both in the network's normalised coordinates, from faces in the frame the network sees (the
batches' alignment). With the fusion's ``ridge`` option, :func:`fit_ridge` then fits the ridge map
from the input's coordinates in ``U`` and ``W`` to the neutral face's in ``U``. See
:mod:`facelab.nn.subspace_fusion`.
"""

from __future__ import annotations

import numpy as np
import torch

from facelab.training.data import PairBatches

SAMPLE_PAIRS = 8000


def _sampled_pairs(count: int, seed: int, stream: int) -> np.ndarray:
    """Sorted indices of up to SAMPLE_PAIRS of ``count`` pairs, drawn from (seed, stream)."""
    rng = np.random.default_rng([seed, stream])
    return np.sort(rng.choice(count, size=min(SAMPLE_PAIRS, count), replace=False))


def _main_directions(rows: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """The top ``k`` right singular vectors of ``rows`` (m, d), as (d, k) orthonormal columns."""
    k = min(k, rows.shape[0], rows.shape[1])
    generator_state = torch.random.get_rng_state()
    try:  # svd_lowrank draws from the global generator: seed it locally
        torch.manual_seed(seed)
        _, _, v = torch.svd_lowrank(rows, q=min(k + 20, min(rows.shape)), niter=4)
    finally:
        torch.random.set_rng_state(generator_state)
    return v[:, :k]


def fit_subspaces(batches: PairBatches, expression_dims: int, identity_dims: int,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(center (3n,), U (3n, expression_dims), W (3n, identity_dims)) from the batches' pairs.

    Columns beyond what the data spans (a tiny dataset) are zero, so they neither keep nor drop
    anything.
    """
    pairs = batches.pairs
    chosen = _sampled_pairs(len(pairs), seed, stream=5)
    size = 3 * batches.dataset.n_vertices
    # Filled in place and freed before the neutral faces are read: the two fits' arrays (8,000 x 3n
    # float32, subjects x 3n float64) are the largest of training's preparation.
    displacements = torch.empty(len(chosen), size)
    for start in range(0, len(chosen), 256):
        x_e, x_n, _ = batches.rows(chosen[start:start + 256])
        displacements[start:start + len(x_e)] = (x_e - x_n).reshape(len(x_e), -1).float().cpu()
    expression = torch.zeros(size, expression_dims, dtype=torch.float64)
    found = _main_directions(displacements, expression_dims, seed).double()
    expression[:, :found.shape[1]] = torch.linalg.qr(found)[0]
    del displacements

    neutral_of = {}
    for index, pair in enumerate(pairs):
        neutral_of.setdefault(pair.subject, index)
    own = np.array(sorted(neutral_of.values()), dtype=np.int64)
    centred = torch.empty(len(own), size, dtype=torch.float64)
    for start in range(0, len(own), 256):
        _, x_n, _ = batches.rows(own[start:start + 256])
        centred[start:start + len(x_n)] = x_n.reshape(len(x_n), -1).double().cpu()
    center = centred.mean(dim=0)
    centred -= center
    centred -= (centred @ expression) @ expression.T
    identity = torch.zeros(size, identity_dims, dtype=torch.float64)
    if identity_dims and len(centred) > 1:
        found = _main_directions(centred, identity_dims, seed + 1)
        # Re-orthogonalise against U (rounding) and within itself.
        found = found - expression @ (expression.T @ found)
        found, _ = torch.linalg.qr(found)
        identity[:, :found.shape[1]] = found
    return center.float(), expression.float(), identity.float()


#: The ridge of :func:`fit_ridge`, relative to the features' mean variance: small enough to stay
#: close to least squares, large enough to keep directions with little data from blowing up.
RIDGE = 1e-3


def fit_ridge(batches: PairBatches, fusion, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (e, e + i), bias (e,)): the ridge regression from an expressive face's coordinates in
    ``U`` and ``W`` to its neutral face's in ``U``, over a seeded sample of the batches' pairs, in
    float64. ``fusion`` is a :class:`~facelab.nn.subspace_fusion.SubspaceFusion` with its bases set."""
    chosen = _sampled_pairs(len(batches.pairs), seed, stream=6)
    features, targets = [], []
    with torch.no_grad():
        for start in range(0, len(chosen), 256):
            x_e, x_n, _ = batches.rows(chosen[start:start + 256])
            e_u, e_w = fusion.coordinates(x_e)
            n_u, _ = fusion.coordinates(x_n)
            features.append(torch.cat([e_u, e_w], dim=1).double().cpu())
            targets.append(n_u.double().cpu())
    features, targets = torch.cat(features), torch.cat(targets)
    feature_mean, target_mean = features.mean(dim=0), targets.mean(dim=0)
    centred, centred_targets = features - feature_mean, targets - target_mean
    gram = centred.T @ centred
    ridge = RIDGE * float(torch.trace(gram)) / gram.shape[0] + 1e-12
    weight = torch.linalg.solve(gram + ridge * torch.eye(gram.shape[0], dtype=gram.dtype),
                                centred.T @ centred_targets).T
    bias = target_mean - weight @ feature_mean
    return weight.float(), bias.float()

