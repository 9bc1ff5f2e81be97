"""SynthFaces: many identities, each neutral and with the 12 CoMA expressions at 3 intensities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelab.data.synth.chart import face_chart
from facelab.data.synth.expressions import EXPRESSIONS, deform
from facelab.data.synth.identity import identity_geometry, sample_identity_params

DEFAULT_INTENSITIES = (0.35, 0.7, 1.0)
NEUTRAL = "neutral"


@dataclass(frozen=True)
class SynthFaces:
    """A generated dataset, all meshes on the template's topology.

    Attributes:
        vertices: (N, n, 3) float32, mm.
        triangles: (m, 3) int64, the template's.
        subjects: N subject names, e.g. "synth_000".
        expressions: N labels, "neutral" or f"{expression}_{level}" with level 1..3 (weak..strong).
        seed: the seed the set was generated from.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    subjects: list[str]
    expressions: list[str]
    seed: int


def subject_params(seed: int, index: int) -> np.ndarray:
    """Identity parameters (IDENTITY_DIM,) of subject ``index``: from its own seed, so a subject
    is the same whatever the number of subjects generated."""
    return sample_identity_params(np.random.default_rng([seed, index]), 1)[0]


def generate_synthfaces(identities: int = 100, seed: int = 0, intensities=DEFAULT_INTENSITIES,
                        first: int = 0) -> SynthFaces:
    """Generate ``identities`` subjects x (neutral + len(EXPRESSIONS) x len(intensities)) meshes.

    Records are ordered subject by subject: the neutral, then each expression of ``EXPRESSIONS``
    at each intensity in increasing order. Deterministic: the same arguments give bitwise equal
    arrays. ``first`` starts at another subject: subjects ``first .. first + identities - 1`` are
    bitwise the same as in one call for all of them (each subject has its own seed, and nothing
    is computed across subjects), so a large set can be generated block by block.
    """
    if identities < 1:
        raise ValueError(f"identities must be at least 1, got {identities}")
    if first < 0:
        raise ValueError(f"the first subject's index must be at least 0, got {first}")
    intensities = sorted(float(level) for level in intensities)
    params = np.stack([subject_params(seed, k) for k in range(first, first + identities)])
    geometry = identity_geometry(params)
    neutral = geometry.neutral
    per_subject = 1 + len(EXPRESSIONS) * len(intensities)
    n = face_chart().n_vertices
    vertices = np.empty((identities, per_subject, n, 3), dtype=np.float32)
    vertices[:, 0] = neutral
    labels = [NEUTRAL]
    slot = 1
    for name in EXPRESSIONS:
        for level, intensity in enumerate(intensities, start=1):
            vertices[:, slot] = deform(neutral, name, intensity, geometry)
            labels.append(f"{name}_{level}")
            slot += 1
    subjects = [f"synth_{k:03d}" for k in range(first, first + identities) for _ in range(per_subject)]
    return SynthFaces(
        vertices=vertices.reshape(identities * per_subject, n, 3),
        triangles=np.array(face_chart().triangles, dtype=np.int64),
        subjects=subjects,
        expressions=labels * identities,
        seed=seed,
    )
