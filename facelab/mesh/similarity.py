"""The similarity transform of a batch of faces (uniform scale, rotation, translation) and its
least-squares fit onto one face (Umeyama 1991, the weighted Kabsch fit with scale). Batched in
torch: ``(B, n, 3)`` faces, on any device.

The fit may return a mirror: a face whose coordinates have the other handedness (an exporter
that negated one axis) is fitted onto the template by a reflection, so the network sees the
face it was trained on and the prediction goes back mirrored, like its input. A face of the
template's handedness is fitted by a proper rotation: a mirror would map its left side onto the
template's right, a far worse fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SimilarityTransform:
    """``y = scale * x @ rotation.T + translation`` for each face of a batch.

    Shapes: ``scale`` (B,), ``rotation`` (B, 3, 3) orthogonal, ``translation`` (B, 3). A
    ``rotation`` is proper, or a rotation after a mirror for a face of the other handedness
    (:meth:`mirrored`).
    """

    scale: Tensor
    rotation: Tensor
    translation: Tensor

    def apply(self, x: Tensor) -> Tensor:
        """(B, n, 3) -> (B, n, 3): into the template's frame."""
        return self.scale[:, None, None] * (x @ self.rotation.transpose(1, 2)) + self.translation[:, None, :]

    def invert(self, y: Tensor) -> Tensor:
        """(B, n, 3) -> (B, n, 3): back into the input's frame (the inverse of :meth:`apply`)."""
        return ((y - self.translation[:, None, :]) @ self.rotation) / self.scale[:, None, None]

    def mirrored(self) -> Tensor:
        """(B,) True where the transform mirrors the face (its ``rotation`` has determinant -1)."""
        return torch.linalg.det(self.rotation.to(torch.float64)) < 0

    def degrees(self) -> Tensor:
        """(B,) each rotation's angle in degrees; for a mirrored face, the smallest turn left once
        one of its axes is negated (a change of handedness negates one)."""
        diagonal = self.rotation.to(torch.float64).diagonal(dim1=1, dim2=2)
        trace = diagonal.sum(-1)
        # negating axis i first turns R into R diag(..., -1 at i, ...): its trace loses 2 R_ii
        cosine = torch.where(self.mirrored(), trace - 2 * diagonal.amin(-1) - 1, trace - 1) / 2
        return torch.rad2deg(torch.acos(cosine.clamp(-1.0, 1.0)))

    def inverse(self) -> SimilarityTransform:
        """The transform :meth:`invert` applies."""
        rotation = self.rotation.transpose(1, 2)
        return SimilarityTransform(1 / self.scale, rotation,
                                   -(rotation @ self.translation[:, :, None])[:, :, 0] / self.scale[:, None])

    def then(self, other: SimilarityTransform) -> SimilarityTransform:
        """This transform followed by ``other``: ``other.apply(self.apply(x))`` in one."""
        return SimilarityTransform(other.scale * self.scale, other.rotation @ self.rotation,
                                   other.scale[:, None] * (other.rotation @ self.translation[:, :, None])[:, :, 0]
                                   + other.translation)


def fit_similarity(source: Tensor, target: Tensor, weights: Tensor | None = None) -> SimilarityTransform:
    """The least-squares similarity transform taking each face of ``source`` onto ``target``.

    Args:
        source: (B, n, 3) faces.
        target: (n, 3) the face they are fitted onto (the template).
        weights: (n,) non-negative weight of each vertex in the fit (None: all equal).

    The fit is computed in float64 (a 3 x 3 SVD per face), so it is exact to rounding whatever
    the faces' offset from the origin. It is the best orthogonal fit: a mirror where the face is
    mirrored against ``target`` (see the module's docstring), a proper rotation otherwise.
    """
    # Plain (batched) matmuls rather than einsum: at a few thousand points the fit is a handful of
    # small products, and einsum's planning cost more than the arithmetic.
    x = source.to(torch.float64)
    y = target.to(device=x.device, dtype=torch.float64)
    if weights is None:
        w = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=torch.float64, device=x.device)
    else:
        w = weights.to(device=x.device, dtype=torch.float64)
        w = w / w.sum()
    mean_x = w @ x  # (B, 3)
    mean_y = w @ y
    xc = x - mean_x[:, None, :]
    yc = y - mean_y
    covariance = (yc * w[:, None]).T @ xc  # (B, 3, 3): sum w y x^T
    u, singular, vh = torch.linalg.svd(covariance)
    rotation = u @ vh
    # sum_n w_n |xc_n|^2 as one matmul over the flattened coordinates: summing the last axis of
    # three first is a reduction over a tiny axis, six times slower at a batch of 64.
    variance = xc.reshape(xc.shape[0], -1).square() @ w.repeat_interleave(3)
    scale = singular.sum(dim=-1) / variance.clamp_min(torch.finfo(torch.float64).tiny)
    translation = mean_y - scale[:, None] * (rotation @ mean_x[:, :, None])[:, :, 0]
    dtype = source.dtype if source.is_floating_point() else torch.float32
    return SimilarityTransform(scale.to(dtype), rotation.to(dtype), translation.to(dtype))
