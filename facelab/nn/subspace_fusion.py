"""Subspace fusion: the decoded face inside the expression subspace, the input's geometry outside it.

The paper rebuilds the whole neutral face from a 25-number code, so a person's geometry that
the code cannot hold is lost (0.23 mm of an unseen SynthFaces neutral face even for the best
linear 25-number code). Expressions, however, move a face within a low-dimensional subspace
``U`` of vertex space (the main directions of expressive-minus-neutral displacements in the
training pairs): what lies outside it is the same in the expressive face and in its neutral
face. This layer keeps the decoder's prediction ``p`` inside ``U`` and takes the rest from the
input ``x``, restricted to an identity subspace ``W`` (the main directions of the training
neutral faces, made orthogonal to ``U``), so that noise and anything no training face showed
are not copied through::

    fuse(p, x) = c + U U^T (p - c) + W W^T (x - c)

with ``c`` the training neutral faces' mean. ``U`` and ``W`` have orthonormal columns and
``U^T W = 0``; all three live in the network's normalised coordinates and are fitted on the
training pairs (:func:`facelab.training.subspaces.fit_subspaces`), then saved with the weights.

Args:
    n_vertices: vertices of the template.
    expression_dims: columns of ``U``.
    identity_dims: columns of ``W``.

Shapes:
    predicted (B, n, 3), inputs (B, n, 3) -> (B, n, 3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SubspaceFusion(nn.Module):
    def __init__(self, n_vertices: int, expression_dims: int, identity_dims: int) -> None:
        super().__init__()
        size = 3 * n_vertices
        self.register_buffer("center", torch.zeros(size))
        self.register_buffer("expression_basis", torch.zeros(size, expression_dims))
        self.register_buffer("identity_basis", torch.zeros(size, identity_dims))

    def set_bases(self, center: Tensor, expression_basis: Tensor, identity_basis: Tensor) -> None:
        """Install fitted bases (shapes as the buffers'); the caller guarantees orthonormality."""
        with torch.no_grad():
            self.center.copy_(center.reshape(-1))
            self.expression_basis.copy_(expression_basis)
            self.identity_basis.copy_(identity_basis)

    @property
    def is_fitted(self) -> bool:
        return bool(self.expression_basis.abs().sum() > 0)

    def forward(self, predicted: Tensor, inputs: Tensor) -> Tensor:
        shape = predicted.shape
        # float32 under mixed precision too: the input's geometry passes through these products.
        with torch.autocast(predicted.device.type, enabled=False):
            p = predicted.reshape(shape[0], -1).float() - self.center
            x = inputs.reshape(shape[0], -1).float() - self.center
            u, w = self.expression_basis, self.identity_basis
            fused = self.center + (p @ u) @ u.T + (x @ w) @ w.T
        return fused.reshape(shape).to(predicted.dtype)
