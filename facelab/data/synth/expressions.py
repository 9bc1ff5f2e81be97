"""The 12 CoMA expressions as non-linear, identity-dependent deformations of a neutral face.

Two kinds of motion are combined:

* **Sliding skin**: a vertex moves in the chart (and its relief may grow or shrink), and is then
  re-embedded on the identity's own head surface. Moving a mouth corner "up and back" therefore
  follows the curve of that person's cheek, and the same chart motion gives a different 3D
  motion on a narrower or deeper face.
* **Jaw rotation**: the part of the face carried by the mandible rotates about an axis through
  the identity's jaw hinges (in front of the ears), with a smooth weight so the cheeks stretch.
  A real rotation, so displacement is not linear in intensity.

Magnitudes scale with the identity's mouth width and face size, its "expressiveness" and its
left/right asymmetry, so an expression's displacement field differs from person to person and
expression and identity do not simply add up.

Intensity is a fraction of the full expression: 1.0 is a clearly visible CoMA-like expression
(mouth_open opens the lips ~20 mm, a high smile moves the corners ~10 mm).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from facelab.data.synth import regions
from facelab.data.synth.anatomy import embed
from facelab.data.synth.chart import face_chart
from facelab.data.synth.identity import IdentityGeometry, identity_geometry
from facelab.data.synth.shapes import gaussian, smoothstep, window

EXPRESSIONS: tuple[str, ...] = (
    "bareteeth", "cheeks_in", "eyebrow", "high_smile", "lips_back", "lips_up",
    "mouth_down", "mouth_extreme", "mouth_middle", "mouth_open", "mouth_side", "mouth_up",
)

# Chart point (mm) on the surface in front of the ear, level with the jaw joint, and how far
# the joint lies beneath that skin (mm).
_HINGE_CHART_POINT = (90.0, -4.0)
_HINGE_DEPTH = 10.0


class _Motion:
    """Accumulates one expression's chart slides and relief changes for a batch of identities,
    then applies them and any jaw rotations to the vertices."""

    def __init__(self, geometry: IdentityGeometry, strength: np.ndarray) -> None:
        self.geometry = geometry
        self.strength = strength  # (count, 1): intensity x the identity's expressiveness
        count, n = geometry.relief.shape
        self.du = np.zeros((count, n))
        self.dv = np.zeros((count, n))
        self.drelief = np.zeros((count, n))
        self.rotations: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    @property
    def traits(self) -> dict[str, np.ndarray]:
        return self.geometry.traits

    def mouth_scale(self) -> np.ndarray:
        return self.traits["mouth_width"] * self.traits["face_width"]

    def side_factor(self) -> np.ndarray:
        """(count, n): the identity's stronger side does more, the other side less."""
        return 1.0 + self.traits["expression_asymmetry"] * regions.lateral_sign()

    def corner_pull(self, du_mm: float, dv_mm: float) -> None:
        """Move both mouth corners (lateral ``du_mm``, up ``dv_mm``), the lips following."""
        corners = regions.corner_weight(True) + regions.corner_weight(False)
        amount = self.strength * self.mouth_scale() * self.side_factor() * corners
        self.du += du_mm * amount * regions.lateral_sign()
        self.dv += dv_mm * amount

    def rotate_jaw(self, angle: np.ndarray, weight: np.ndarray, axis: str = "x") -> None:
        """Rotate (weighted) about the identity's jaw hinge: about the x axis through both joints
        (opening) or about a vertical axis through their midpoint (sideways)."""
        hinge_uv = np.broadcast_to(np.array(_HINGE_CHART_POINT), (self.geometry.count, 1, 2))
        hinge = embed(hinge_uv, np.zeros((self.geometry.count, 1)), self.geometry.head)[:, 0, :]
        hinge[:, 0] = 0.0
        hinge[:, 2] -= _HINGE_DEPTH
        axis_vector = np.array([1.0, 0.0, 0.0]) if axis == "x" else np.array([0.0, 1.0, 0.0])
        self.rotations.append((hinge, axis_vector, angle[:, 0], weight))

    def apply(self, vertices: np.ndarray) -> np.ndarray:
        slid_uv = self.geometry.uv + np.stack([self.du, self.dv], axis=-1)
        moved = vertices + (self.geometry.embed(slid_uv, self.geometry.relief + self.drelief) - self.geometry.embed())
        for origin, axis, angle, weight in self.rotations:
            rotated = _rotate(moved - origin[:, None, :], axis, angle) + origin[:, None, :]
            moved = moved + weight[..., None] * (rotated - moved)
        return moved


def _rotate(points: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate (count, n, 3) points about a unit ``axis`` through the origin by ``angle`` (count,)
    radians (Rodrigues' formula)."""
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    cross = np.cross(axis, points)
    dot = (points @ axis)[..., None]
    return points * cos + cross * sin + axis * dot * (1.0 - cos)


def _upper_lip_lift() -> np.ndarray:
    """Upper lip and the skin above it up to the nose; 0 on the lower lip."""
    chart = face_chart()
    u, v = chart.uv.T
    mouth_v = chart.mouth_line_v
    return ((1.0 - regions.below_mouth_weight()) * smoothstep(mouth_v + 21.0, mouth_v + 4.0, v)
            * window(np.abs(u), -1.0, chart.mouth_corner_u + 2.0, 12.0))


def _lower_lip() -> np.ndarray:
    return regions.jaw_weight() * regions.lips_weight()


def _bareteeth(m: _Motion) -> None:
    m.dv += m.strength * (4.5 * _upper_lip_lift() - 4.5 * _lower_lip())
    m.corner_pull(4.0, 1.0)
    m.drelief += m.strength * (-1.5 * regions.lips_weight() - 1.0 * regions.relief_term("nasolabial_folds"))
    m.rotate_jaw(0.05 * m.strength, regions.jaw_weight())


def _cheeks_in(m: _Motion) -> None:
    m.drelief += m.strength * (-6.0 * regions.cheeks_weight() + 1.5 * regions.lips_weight())
    m.corner_pull(-3.0, 0.0)
    m.rotate_jaw(0.03 * m.strength, regions.jaw_weight())


def _eyebrow(m: _Motion) -> None:
    u, v = face_chart().uv.T
    m.dv += 7.0 * m.strength * m.traits["face_height"] * regions.brow_lift_weight()
    creases = regions.forehead_weight() * (0.5 + 0.5 * np.cos(2.0 * np.pi * (v - 44.0) / 8.0))
    m.drelief += m.strength * (-1.2 * creases)
    lids = gaussian(u, v, 33.0, 22.0, 12.0, 5.0) + gaussian(u, v, -33.0, 22.0, 12.0, 5.0)
    m.dv += 1.5 * m.strength * lids


def _high_smile(m: _Motion) -> None:
    m.corner_pull(6.5, 7.0)
    m.dv += m.strength * (2.5 * regions.cheeks_weight() + 1.5 * _upper_lip_lift())
    m.drelief += m.strength * (3.0 * regions.cheeks_weight() - 1.5 * regions.relief_term("nasolabial_folds")
                               + 1.0 * regions.relief_term("under_eye"))
    m.rotate_jaw(0.035 * m.strength, regions.jaw_weight())


def _lips_back(m: _Motion) -> None:
    m.corner_pull(7.0, -0.5)
    m.drelief += m.strength * (-2.5 * regions.lips_weight() + 1.0 * regions.chin_weight())


def _lips_up(m: _Motion) -> None:
    u, v = face_chart().uv.T
    m.dv += m.strength * (5.0 * _upper_lip_lift() + 1.5 * _lower_lip())
    alae = gaussian(u, v, 13.0, -21.0, 8.0, 6.0) + gaussian(u, v, -13.0, -21.0, 8.0, 6.0)
    m.dv += 1.5 * m.strength * alae
    m.drelief += m.strength * (1.5 * regions.relief_term("upper_lip") - 1.5 * regions.relief_term("nasolabial_folds"))


def _mouth_down(m: _Motion) -> None:
    m.corner_pull(1.0, -6.0)
    m.dv += -1.5 * m.strength * _lower_lip()
    m.drelief += m.strength * (1.5 * regions.relief_term("lower_lip") + 2.0 * regions.chin_weight())


def _mouth_extreme(m: _Motion) -> None:
    m.corner_pull(4.0, -1.0)
    m.drelief += m.strength * (-2.0 * regions.lips_weight() - 2.0 * regions.cheeks_weight())
    m.rotate_jaw(0.32 * m.strength, regions.jaw_weight())


def _mouth_middle(m: _Motion) -> None:
    u, v = face_chart().uv.T
    m.corner_pull(-8.0, 0.0)
    pucker = gaussian(u, v, 0.0, face_chart().mouth_line_v, 16.0, 9.0)
    m.drelief += 6.0 * m.strength * pucker


def _mouth_open(m: _Motion) -> None:
    m.corner_pull(-2.0, 0.0)
    m.drelief += -1.2 * m.strength * regions.lips_weight()
    m.rotate_jaw(0.2 * m.strength, regions.jaw_weight())


def _mouth_side(m: _Motion) -> None:
    m.du += 5.0 * m.strength * m.mouth_scale() * regions.lips_weight()
    m.rotate_jaw(0.12 * m.strength, regions.lower_face_weight(), axis="y")


def _mouth_up(m: _Motion) -> None:
    m.dv += 5.0 * m.strength * regions.mentalis_weight()
    m.corner_pull(0.0, -2.0)
    u, v = face_chart().uv.T
    dimples = regions.chin_weight() * np.cos(u / 2.5) * np.cos((v + 70.0) / 2.5)
    m.drelief += m.strength * (2.0 * regions.relief_term("lower_lip") + 2.0 * regions.chin_weight() - 0.6 * dimples)


_MOTIONS: dict[str, Callable[[_Motion], None]] = {
    "bareteeth": _bareteeth, "cheeks_in": _cheeks_in, "eyebrow": _eyebrow, "high_smile": _high_smile,
    "lips_back": _lips_back, "lips_up": _lips_up, "mouth_down": _mouth_down,
    "mouth_extreme": _mouth_extreme, "mouth_middle": _mouth_middle, "mouth_open": _mouth_open,
    "mouth_side": _mouth_side, "mouth_up": _mouth_up,
}


def deform(vertices: np.ndarray, name: str, intensity, geometry: IdentityGeometry) -> np.ndarray:
    """:func:`apply_expression` for identities whose geometry is already built."""
    if name not in _MOTIONS:
        raise ValueError(f"unknown expression {name!r}: expected one of {', '.join(EXPRESSIONS)}")
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.shape != (geometry.count, *geometry.relief.shape[1:], 3):
        raise ValueError(f"vertices must have shape {(geometry.count, geometry.relief.shape[1], 3)}, got {vertices.shape}")
    intensity = np.broadcast_to(np.asarray(intensity, dtype=np.float64).reshape(-1, 1), (geometry.count, 1))
    motion = _Motion(geometry, intensity * geometry.traits["expressiveness"])
    _MOTIONS[name](motion)
    return motion.apply(vertices).astype(np.float32)


def apply_expression(vertices: np.ndarray, name: str, intensity, identity_params: np.ndarray) -> np.ndarray:
    """Deform neutral faces by one expression.

    Args:
        vertices: (count, n, 3) neutral vertices (mm) of the identities ``identity_params``.
        name: one of ``EXPRESSIONS``.
        intensity: a float or (count,) array; 1.0 is the full expression, 0 leaves the face as is.
        identity_params: (count, IDENTITY_DIM) parameters of the identities.

    Returns:
        (count, n, 3) float32 deformed vertices, mm.
    """
    return deform(vertices, name, intensity, identity_geometry(identity_params))
