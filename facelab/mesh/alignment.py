"""Similarity alignment: bring faces into the template's frame before the network, and back.

A registered face can sit anywhere: shifted, turned or scaled against the frame a model was
trained in. :class:`Alignment` fits, for each face, the similarity transform (uniform scale,
rotation, translation) that best maps it onto the template in the least-squares sense (Umeyama
1991, the weighted Kabsch fit with scale), over the vertices of a *stable region*: those the
training expressions move least (:func:`stable_region`), so that an open jaw or raised brows do
not tilt the fit. The network sees the aligned face; its prediction is mapped back with the
inverse transform, which makes the whole neutraliser equivariant under similarity transforms.

The ``canonical`` kind adds a learned second step (:mod:`facelab.mesh.frame_correction`): the
template fit tilts each person by an amount their shape decides, and the correction turns the
face back to the orientation faces of its shape had in the training data.

Batched in torch: ``(B, n, 3)`` faces, on any device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from facelab.errors import FacelabError

if TYPE_CHECKING:
    from facelab.mesh.frame_correction import FrameCorrection

ALIGNMENT_KINDS = ("similarity", "canonical", "none")

#: The share of vertices in the stable region: the half the training expressions move least.
STABLE_FRACTION = 0.5


@dataclass(frozen=True)
class SimilarityTransform:
    """``y = scale * x @ rotation.T + translation`` for each face of a batch.

    Shapes: ``scale`` (B,), ``rotation`` (B, 3, 3) proper rotations, ``translation`` (B, 3).
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

    def degrees(self) -> Tensor:
        """(B,) each rotation's angle in degrees."""
        cosine = (self.rotation.to(torch.float64).diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2
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
    the faces' offset from the origin; a reflection is never returned.
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
    sign = torch.sign(torch.linalg.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    d = torch.ones_like(singular)
    d[:, 2] = sign
    rotation = (u * d[:, None, :]) @ vh  # u diag(d) vh
    variance = xc.square().sum(dim=-1) @ w
    scale = (singular * d).sum(dim=-1) / variance.clamp_min(torch.finfo(torch.float64).tiny)
    translation = mean_y - scale[:, None] * (rotation @ mean_x[:, :, None])[:, :, 0]
    dtype = source.dtype if source.is_floating_point() else torch.float32
    return SimilarityTransform(scale.to(dtype), rotation.to(dtype), translation.to(dtype))


@dataclass(frozen=True)
class Alignment:
    """How a model brings faces into its template's frame; recorded in its checkpoints.

    Args:
        kind: ``"similarity"`` (scale, rotation, translation onto the template), ``"canonical"``
            (the same, then turned by ``correction`` back to the training data's orientation) or ``"none"``
            (faces go to the network as they are: the paper, and every model saved before
            alignment existed).
        region: the template's vertex indices the fit uses (None: all vertices).
        correction: the learned correction of ``"canonical"`` (required there, unused otherwise).
    """

    kind: str = "similarity"
    region: tuple[int, ...] | None = None
    correction: FrameCorrection | None = None

    def __post_init__(self) -> None:
        if self.kind not in ALIGNMENT_KINDS:
            raise FacelabError(f"unknown alignment {self.kind!r}: expected one of {', '.join(ALIGNMENT_KINDS)}.")
        if (self.kind == "canonical") != (self.correction is not None):
            raise FacelabError("a canonical alignment needs its learned correction, and only it has one.")
        if self.region is not None:
            object.__setattr__(self, "region", tuple(int(i) for i in self.region))
            if len(self.region) < 3:
                raise FacelabError(f"an alignment region needs at least 3 vertices, got {len(self.region)}.")
        # The region as an index tensor, once: converting thousands of Python ints on every fit
        # cost more than the fit itself.
        index = None if self.region is None else torch.tensor(self.region, dtype=torch.int64)
        object.__setattr__(self, "_index", index)

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    def to_dict(self) -> dict[str, Any]:
        """The JSON part; the correction's tensors are :meth:`tensors`."""
        values = {"kind": self.kind, "region": None if self.region is None else list(self.region)}
        if self.correction is not None:
            values["correction_modes"] = self.correction.modes
        return values

    def tensors(self) -> dict[str, Tensor]:
        """The learned correction's tensors (none for the other kinds), for the checkpoint."""
        return {} if self.correction is None else self.correction.tensors()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, tensors: Mapping[str, Tensor] | None = None) -> Alignment:
        """Inverse of :meth:`to_dict` (and :meth:`tensors`); None (a checkpoint from before
        alignment) is ``"none"``."""
        if values is None:
            return cls("none")
        if not isinstance(values, Mapping) or not isinstance(values.get("kind"), str):
            raise FacelabError("the checkpoint's 'alignment' must be an object with a 'kind' string.")
        region = values.get("region")
        if region is not None and (not isinstance(region, Sequence) or not all(isinstance(i, int) for i in region)):
            raise FacelabError("the checkpoint's 'alignment.region' must be a list of vertex indices.")
        correction = None
        if values["kind"] == "canonical":
            from facelab.mesh.frame_correction import TENSOR_NAMES, FrameCorrection

            missing = [name for name in TENSOR_NAMES if name not in (tensors or {})]
            if missing:
                raise FacelabError("the checkpoint's canonical alignment lacks its learned correction "
                                   f"(tensors {', '.join(missing)}).")
            correction = FrameCorrection.from_tensors(dict(tensors))
        return cls(values["kind"], region, correction)

    def check(self, n_vertices: int) -> Alignment:
        """Raise unless the region indexes a template of ``n_vertices`` vertices (and the
        correction reads a region of its size)."""
        if self.region is not None and (min(self.region) < 0 or max(self.region) >= n_vertices):
            raise FacelabError(f"the alignment region indexes vertices outside 0..{n_vertices - 1}.")
        if self.correction is not None:
            size = 3 * (n_vertices if self.region is None else len(self.region))
            if self.correction.basis.shape[1] != size or self.correction.mean.shape[0] != size:
                raise FacelabError(f"the alignment's correction reads {self.correction.basis.shape[1]} coordinates, "
                                   f"not the {size} of its region.")
        return self

    def _region(self, faces: Tensor) -> Tensor:
        return faces if self._index is None else faces.index_select(1, self._index.to(faces.device))

    def fit_template(self, faces: Tensor, template: Tensor) -> SimilarityTransform:
        """The similarity fit of ``faces`` (B, n, 3) onto ``template`` (n, 3) over the region:
        the first step of every kind but ``"none"``."""
        return fit_similarity(self._region(faces), self._region(template[None])[0])

    def fit(self, faces: Tensor, template: Tensor) -> SimilarityTransform | None:
        """The transforms taking ``faces`` (B, n, 3) into the model's frame; None when disabled."""
        if not self.enabled:
            return None
        region = self._region(faces)   # once: the correction reads the same vertices, aligned
        transform = fit_similarity(region, self._region(template[None])[0])
        if self.correction is None:
            return transform
        return transform.then(self.correction(transform.apply(region)))

    def with_correction(self, faces: Tensor, template: Tensor, turn_only: bool = True) -> Alignment:
        """This alignment made ``"canonical"``, its correction learned from training ``faces``
        (B, n, 3), registered in the data's own frame: the turn alone by default (the template
        fit's scale kept), or with ``turn_only=False`` the whole way back, size included."""
        from facelab.mesh.frame_correction import FrameCorrection

        transform = self.fit_template(faces, template)
        aligned = transform.apply(self._region(faces))
        correction = FrameCorrection.fit(aligned, transform.inverse(), turn_only=turn_only)
        return Alignment("canonical", self.region, correction)


def stable_region(expressive: np.ndarray, neutral: np.ndarray, fraction: float = STABLE_FRACTION) -> tuple[int, ...]:
    """The vertices that expressions move least: the ``fraction`` with the smallest root-mean-square
    displacement between expressive faces (P, n, 3) and their neutral faces (P, n, 3)."""
    displacement = np.sqrt(np.mean(np.sum(np.square(np.asarray(expressive, np.float64)
                                                     - np.asarray(neutral, np.float64)), axis=-1), axis=0))
    count = max(3, int(round(fraction * displacement.size)))
    return tuple(int(i) for i in np.sort(np.argsort(displacement, kind="stable")[:count]))


def align_pairs(alignment: Alignment, template: Tensor, expressive: Tensor,
                neutral: Tensor | None = None) -> tuple[Tensor, Tensor | None, SimilarityTransform | None]:
    """Expressive faces (B, n, 3), and their neutral faces, in the template's frame: both moved by
    the transform fitted on the *expressive* face (the only one known at inference), so that a
    prediction mapped back by its inverse lands on the neutral face in the input's frame."""
    transform = alignment.fit(expressive, template)
    if transform is None:
        return expressive, neutral, None
    return transform.apply(expressive), None if neutral is None else transform.apply(neutral), transform
