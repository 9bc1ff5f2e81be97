"""The learned step of the ``canonical`` alignment: undo the turn a person's shape gives the fit.

A similarity fit onto one template turns each face by an amount that depends on the person's
shape: two people registered in the same pose leave the fit a few degrees apart (ICT-FaceKit: 2.3
degrees on average), so the network sees identities turned against each other, a nonlinear
function of the face that no linear map (and no linear start) can follow. :class:`FrameCorrection`
learns that turn back: a ridge map from the template-aligned face's principal coefficients (over
the alignment's region) to the rotation that returns the face to the orientation faces of its
shape had in the training data. The fit's scale is kept by default (sizes normalised away, which
suits data whose expressions grow with the face); ``turn_only=False`` learns the way back to the
data's size and position too. It reads only the aligned face, so the alignment stays
equivariant: a face moved anyway lands on the same canonical face.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from facelab.mesh.similarity import SimilarityTransform
from facelab.mesh.principal_directions import principal_directions

#: Principal coefficients the correction reads (fewer with fewer than ten faces per mode).
CORRECTION_MODES = 200
#: Ridge strength, relative to the mean eigenvalue of the coefficients' Gram matrix.
RELATIVE_RIDGE = 1e-6
#: A correction is clamped to this multiple of the largest one seen in training (per parameter),
#: so a face unlike any training face is not thrown by an extrapolated turn.
LIMIT_MARGIN = 2.0
TENSOR_NAMES = ("mean", "basis", "map", "limits")


# Rotation vectors in torch rather than scipy's Rotation: the correction runs on the model's
# device, batched, on every inference.
def rotation_vector(rotation: Tensor) -> Tensor:
    """(B, 3, 3) rotations -> (B, 3) axis times angle (the logarithm map)."""
    cosine = ((rotation.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.acos(cosine)
    axis = torch.stack([rotation[:, 2, 1] - rotation[:, 1, 2], rotation[:, 0, 2] - rotation[:, 2, 0],
                        rotation[:, 1, 0] - rotation[:, 0, 1]], dim=-1)
    # axis * angle / (2 sin angle); the limit 1/2 at angle 0
    factor = torch.where(angle > 1e-6, angle / (2 * torch.sin(angle).clamp_min(1e-12)), torch.full_like(angle, 0.5))
    return axis * factor[:, None]


def rotation_matrix(vector: Tensor) -> Tensor:
    """(B, 3) axis times angle -> (B, 3, 3) rotations (Rodrigues' formula)."""
    angle = vector.norm(dim=-1).clamp_min(1e-12)[:, None, None]
    x, y, z = (vector / angle[:, :, 0]).unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=vector.dtype, device=vector.device).expand_as(cross)
    return eye + torch.sin(angle) * cross + (1 - torch.cos(angle)) * (cross @ cross)


def _parameters(transform: SimilarityTransform) -> Tensor:
    """(B, 7): rotation vector, log scale, translation."""
    return torch.cat([rotation_vector(transform.rotation), transform.scale.log()[:, None], transform.translation], 1)


def _transform(parameters: Tensor) -> SimilarityTransform:
    return SimilarityTransform(parameters[:, 3].exp(), rotation_matrix(parameters[:, :3]), parameters[:, 4:])


@dataclass(frozen=True, eq=False)
class FrameCorrection:
    """A ridge map from a template-aligned region's principal coefficients to a correcting transform.

    Args:
        mean: (r * 3,) the aligned training regions' mean, flattened.
        basis: (k, r * 3) their principal directions, as rows.
        map: (k + 1, 7) coefficients (and a constant) -> rotation vector, log scale, translation.
        limits: (7,) the largest magnitude each parameter may take.

    Shapes: :meth:`__call__` takes aligned regions (B, r, 3) and returns transforms of B faces.
    """

    mean: Tensor
    basis: Tensor
    map: Tensor
    limits: Tensor

    @classmethod
    def fit(cls, aligned: Tensor, back: SimilarityTransform, modes: int = CORRECTION_MODES,
            turn_only: bool = True) -> FrameCorrection:
        """Learn the correction from training faces' aligned regions (B, r, 3) and, for each, the
        transform ``back`` that returns it to where it sat in the data (the inverse of its fit).

        ``turn_only``: learn the rotation of ``back`` alone, about the regions' centre, and keep
        the template fit's scale (a face's size normalised away, as the similarity alignment
        does); False learns the whole of ``back``, size included."""
        flat = aligned.reshape(len(aligned), -1).to(torch.float64)
        mean = flat.mean(0)
        centred = flat - mean
        # at least ten faces per mode: a few faces learn a few coarse modes, not noise
        modes = max(1, min(modes, len(flat) // 10, flat.shape[1]))
        basis = torch.from_numpy(principal_directions(centred.numpy(), modes))
        features = torch.cat([centred @ basis.T, torch.ones(len(flat), 1, dtype=flat.dtype)], 1)
        back = SimilarityTransform(*(t.to(torch.float64) for t in (back.scale, back.rotation, back.translation)))
        if turn_only:
            centre = mean.reshape(-1, 3).mean(0)
            rotation = back.rotation
            back = SimilarityTransform(torch.ones_like(back.scale), rotation, centre - rotation @ centre)
        targets = _parameters(back)
        gram = features.T @ features
        ridge = RELATIVE_RIDGE * gram.diagonal()[:-1].mean() * torch.eye(len(gram), dtype=gram.dtype)
        ridge[-1, -1] = 0.0  # the constant is not shrunk
        weights = torch.linalg.solve(gram + ridge, features.T @ targets)
        limits = LIMIT_MARGIN * targets.abs().amax(0)
        return cls(*(t.to(torch.float32) for t in (mean, basis, weights, limits)))

    def __call__(self, aligned: Tensor) -> SimilarityTransform:
        """The correcting transforms of aligned regions (B, r, 3), in their dtype and device
        (float32 is ample: the corrections are a few degrees, the coefficients tens of mm)."""
        dtype = aligned.dtype if aligned.is_floating_point() else torch.float32
        mean, basis, weights, limits = (t.to(device=aligned.device, dtype=dtype) for t in
                                        (self.mean, self.basis, self.map, self.limits))
        coefficients = (aligned.reshape(len(aligned), -1).to(dtype) - mean) @ basis.T
        parameters = coefficients @ weights[:-1] + weights[-1]
        return _transform(torch.maximum(torch.minimum(parameters, limits), -limits))

    @property
    def modes(self) -> int:
        return int(self.basis.shape[0])

    def tensors(self) -> dict[str, Tensor]:
        return dict(zip(TENSOR_NAMES, (self.mean, self.basis, self.map, self.limits)))

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> FrameCorrection:
        return cls(*(tensors[name].to(torch.float32) for name in TENSOR_NAMES))
