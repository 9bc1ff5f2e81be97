"""Expression mixture: a neutral face's expression coordinates from one linear map per expression.

One linear map from an expressive face to its neutral face cannot hold many expressions at once:
each expression moves a face its own way, and a map fitted on all of them averages those ways;
fitted per expression, the maps are close (docs/neutraliser.md has the measurements). This layer
keeps one ridge map per training expression, from the input's coordinates in the fusion's
subspaces ``U`` and ``W`` to the neutral face's in ``U``, and a classifier (the router) that reads the input's ``U`` coordinates and says how likely
each expression is; the prediction is the maps' average under those probabilities::

    m(x) = sum_k p_k(f_U) (A_k f + b_k),     f = (x_UW - f_m) / f_s

with ``f_m, f_s`` the mean and spread of the input coordinates over the training pairs. The
router sees the expression coordinates only, so it chooses by what the face does; the maps stay
linear in the person's geometry, so they carry over to people no training pair showed. Both are
fitted before the network trains (:func:`facelab.training.mixture_fit.fit_mixture`) and are
buffers, not trained with the network: trained on the network's loss they fitted the training
subjects better and unseen ones worse.

Args:
    expression_dims: columns of ``U`` (the coordinates predicted).
    identity_dims: columns of ``W``.
    experts: the expressions, one map each.
    hidden: width of the router's two hidden layers.

Shapes:
    x_u (B, expression_dims), x_w (B, identity_dims) -> (B, expression_dims).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ExpressionMixture(nn.Module):
    def __init__(self, expression_dims: int, identity_dims: int, experts: int, hidden: int = 256) -> None:
        super().__init__()
        features = expression_dims + identity_dims
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_scale", torch.ones(features))
        self.register_buffer("expert_weight", torch.zeros(experts, features, expression_dims))
        self.register_buffer("expert_bias", torch.zeros(experts, expression_dims))
        self.router = nn.Sequential(
            nn.Linear(expression_dims, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, experts),
        )
        self.router.requires_grad_(False)  # fitted on its own, never by the network's loss
        self.expression_dims = expression_dims

    def features(self, x_u: Tensor, x_w: Tensor) -> Tensor:
        """The standardised input coordinates f (B, e + i)."""
        return (torch.cat([x_u, x_w], dim=1) - self.feature_mean) / self.feature_scale

    def expression_logits(self, x_u: Tensor) -> Tensor:
        """The router's logits (B, experts) for inputs with expression coordinates ``x_u`` (B, e)."""
        e = self.expression_dims
        return self.router((x_u - self.feature_mean[:e]) / self.feature_scale[:e])

    def forward(self, x_u: Tensor, x_w: Tensor) -> Tensor:
        probabilities = torch.softmax(self.expression_logits(x_u), dim=-1)
        mapped = torch.einsum("bf,kfo->bko", self.features(x_u, x_w), self.expert_weight) + self.expert_bias
        return (probabilities.unsqueeze(-1) * mapped).sum(dim=1)
