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

With ``ridge``, the coordinates inside ``U`` are not the decoder's alone: a ridge regression
``r(x) = A [U^T (x - c); W^T (x - c)] + b``, fitted on the training pairs in closed form, predicts
the neutral face's ``U`` coordinates from the input's, and a learned gate per direction ``g``
(starting at 0) mixes it with the decoder's::

    fuse(p, x) = c + U (r(x) + g * (U^T (p - c) - r(x))) + W W^T (x - c)

so the network starts as that linear map and moves each direction towards the decoder only as far
as training finds the decoder better there. With ``experts``, ``r`` is an
:class:`~facelab.nn.expression_mixture.ExpressionMixture` of that many linear maps instead (a
router picks them by the input's expression), mixed with the decoder by the same gates.

Args:
    n_vertices: vertices of the template.
    expression_dims: columns of ``U``.
    identity_dims: columns of ``W``.
    ridge: mix the decoder with the ridge map inside ``U`` (see above).
    experts: mix the decoder with a mixture of this many linear maps inside ``U`` (0: none).

Shapes:
    predicted (B, n, 3), inputs (B, n, 3) -> (B, n, 3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from facelab.nn.expression_mixture import ExpressionMixture


class SubspaceFusion(nn.Module):
    def __init__(self, n_vertices: int, expression_dims: int, identity_dims: int, ridge: bool = False,
                 experts: int = 0) -> None:
        super().__init__()
        if ridge and experts:
            raise ValueError("a fusion takes the ridge map or the expression mixture, not both")
        size = 3 * n_vertices
        self.register_buffer("center", torch.zeros(size))
        self.register_buffer("expression_basis", torch.zeros(size, expression_dims))
        self.register_buffer("identity_basis", torch.zeros(size, identity_dims))
        self.ridge = ridge
        if ridge:
            self.register_buffer("ridge_weight", torch.zeros(expression_dims, expression_dims + identity_dims))
            self.register_buffer("ridge_bias", torch.zeros(expression_dims))
        self.mixture = ExpressionMixture(expression_dims, identity_dims, experts) if experts else None
        if ridge or experts:
            self.gate = nn.Parameter(torch.zeros(expression_dims))

    def set_bases(self, center: Tensor, expression_basis: Tensor, identity_basis: Tensor) -> None:
        """Install fitted bases (shapes as the buffers'); the caller guarantees orthonormality."""
        with torch.no_grad():
            self.center.copy_(center.reshape(-1))
            self.expression_basis.copy_(expression_basis)
            self.identity_basis.copy_(identity_basis)

    def set_ridge(self, weight: Tensor, bias: Tensor) -> None:
        """Install the fitted ridge map (``ridge`` only): weight (e, e + i), bias (e,)."""
        with torch.no_grad():
            self.ridge_weight.copy_(weight)
            self.ridge_bias.copy_(bias)

    @property
    def is_fitted(self) -> bool:
        return bool(self.expression_basis.abs().sum() > 0)

    @property
    def ridge_is_fitted(self) -> bool:
        return self.ridge and bool(self.ridge_weight.abs().sum() > 0)

    @property
    def mixture_is_fitted(self) -> bool:
        return self.mixture is not None and bool(self.mixture.expert_weight.abs().sum() > 0)

    def coordinates(self, faces: Tensor) -> tuple[Tensor, Tensor]:
        """Faces (B, n, 3) in normalised coordinates -> their coordinates in U (B, e) and W (B, i)."""
        x = faces.reshape(faces.shape[0], -1).float() - self.center
        return x @ self.expression_basis, x @ self.identity_basis

    def expression_probabilities(self, inputs: Tensor) -> Tensor:
        """The expression mixture's reading of input faces (B, n, 3), normalised: how likely each of
        its expressions is (B, experts), rows summing to 1."""
        if self.mixture is None:
            raise ValueError("only a fusion with the expression mixture reads expressions")
        with torch.autocast(inputs.device.type, enabled=False):
            return torch.softmax(self.mixture.expression_logits(self.coordinates(inputs)[0]), dim=-1)

    def input_map(self, x_u: Tensor, x_w: Tensor) -> Tensor:
        """The neutral face's ``U`` coordinates predicted from the input's alone (the ridge map or
        the expression mixture): (B, e), (B, i) -> (B, e)."""
        if self.mixture is not None:
            return self.mixture(x_u, x_w)
        return torch.cat([x_u, x_w], dim=1) @ self.ridge_weight.T + self.ridge_bias

    def forward(self, predicted: Tensor, inputs: Tensor) -> Tensor:
        shape = predicted.shape
        # float32 under mixed precision too: the input's geometry passes through these products.
        with torch.autocast(predicted.device.type, enabled=False):
            p_u = (predicted.reshape(shape[0], -1).float() - self.center) @ self.expression_basis
            x_u, x_w = self.coordinates(inputs)
            if self.ridge or self.mixture is not None:
                mapped = self.input_map(x_u, x_w)
                p_u = mapped + self.gate * (p_u - mapped)
            fused = self.center + p_u @ self.expression_basis.T + x_w @ self.identity_basis.T
        return fused.reshape(shape).to(predicted.dtype)
