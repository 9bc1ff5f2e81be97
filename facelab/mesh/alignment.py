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
from facelab.mesh.similarity import SimilarityTransform, fit_similarity

if TYPE_CHECKING:
    from facelab.mesh.frame_correction import FrameCorrection

ALIGNMENT_KINDS = ("similarity", "canonical", "none")

#: The share of vertices in the stable region: the half the training expressions move least.
STABLE_FRACTION = 0.5


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
