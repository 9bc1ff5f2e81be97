"""The 12 CoMA expressions as non-linear, identity-dependent deformations of a neutral face.

Two kinds of motion are combined:

* **Sliding skin**: a vertex moves in the chart (and its relief may grow or shrink), and is then
  re-embedded on the identity's own head surface. Moving a mouth corner "up and back" therefore
  follows the curve of that person's cheek, and the same chart motion gives a different 3D
  motion on a narrower or deeper face.
* **Jaw rotation**: the part of the face carried by the mandible rotates about an axis through
  the identity's jaw joints (in front of the ears; opening) or a vertical axis behind the chin
  (mouth_side), with a smooth weight so the cheeks stretch. A real rotation, so displacement is
  not linear in intensity.

Every motion is placed on the identity's own features (the regions are attached to vertices that
the identity warp has moved) and sized by its traits: mouth width, face size, and how the
person performs expressions (expressiveness, left/right asymmetry, the direction they pull their
mouth corners, how far they drop and glide the jaw, how they hold their lips). So an expression's
displacement field differs from person to person: expression and identity do not simply add up.

Intensity is a fraction of the full expression: 1.0 is a clearly visible CoMA-like expression
(mouth_open parts the lips by ~15-25 mm, a high smile moves the corners ~8-14 mm).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from facelab.data.synth import regions
from facelab.data.synth.anatomy import embed
from facelab.data.synth.identity import IdentityGeometry, identity_geometry

EXPRESSIONS: tuple[str, ...] = (
    "bareteeth", "cheeks_in", "eyebrow", "high_smile", "lips_back", "lips_up",
    "mouth_down", "mouth_extreme", "mouth_middle", "mouth_open", "mouth_side", "mouth_up",
)

# Chart point (mm) on the surface in front of the ear, level with the jaw joint, and how far
# the joint lies beneath that skin (mm).
_HINGE_CHART_POINT = (90.0, -4.0)
_HINGE_DEPTH = 10.0
# When the jaw opens, its joints also glide forward and down (mm per radian of opening, scaled
# per person by "jaw_glide").
_JAW_GLIDE_MM_PER_RAD = 14.0
_JAW_GLIDE_DIRECTION = np.array([0.0, -0.35, 1.0]) / np.hypot(0.35, 1.0)
_X_AXIS, _Y_AXIS = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
# Region weights below this are treated as 0 (the motion there is under 1e-7 mm).
_NEGLIGIBLE_WEIGHT = 1e-9


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
        # Vertices any slide can reach. Decided from the regions alone, never from the
        # identities, so an identity's result does not depend on the batch it is generated in.
        self.sliding = np.zeros(n, dtype=bool)
        # (hinge point (count, 3), unit axis (3,), angle (count,), glide (count, 3), weight (n,))
        self.rotations: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    @property
    def traits(self) -> dict[str, np.ndarray]:
        return self.geometry.traits

    def slide(self, region: np.ndarray, du=0.0, dv=0.0, relief=0.0) -> None:
        """Move the skin over ``region`` (n,): by ``du``/``dv`` mm in the chart (lateral u is
        toward the viewer's right) and ``relief`` mm out along the normal, each a number or a
        (count, 1) or (count, n) array, scaled by the region's weight."""
        for total, amount in ((self.du, du), (self.dv, dv), (self.drelief, relief)):
            if not (np.isscalar(amount) and amount == 0.0):
                total += amount * region
        self.sliding |= np.abs(region) > _NEGLIGIBLE_WEIGHT

    def mouth_scale(self) -> np.ndarray:
        return self.traits["mouth_width"] * self.traits["face_width"]

    def corner_pull(self, lateral_mm: float, up_mm: float) -> None:
        """Move both mouth corners (outward ``lateral_mm``, up ``up_mm``), the lips following.
        Each person pulls in their own direction ("smile_angle") and harder on one side
        ("expression_asymmetry")."""
        corners = regions.corner_weight(True) + regions.corner_weight(False)
        cos, sin = np.cos(self.traits["smile_angle"]), np.sin(self.traits["smile_angle"])
        stronger_side = 1.0 + self.traits["expression_asymmetry"] * regions.lateral_sign()
        amount = self.strength * self.mouth_scale() * stronger_side
        self.slide(corners, du=(lateral_mm * cos - up_mm * sin) * amount * regions.lateral_sign(),
                   dv=(lateral_mm * sin + up_mm * cos) * amount)

    def lip_relief(self, mm: float) -> None:
        """Thicken (positive) or thin and press (negative) the lips, as firmly as this person
        holds them ("lip_tension")."""
        self.slide(regions.lips_weight(), relief=mm * self.strength * self.traits["lip_tension"])

    def open_jaw(self, angle: float) -> None:
        """Rotate the jaw open by ``angle`` radians (x the strength) about the axis through both
        of the identity's jaw joints, the joints gliding forward as it opens. Some people drop
        the jaw further than others ("jaw_drop")."""
        angle = angle * self.strength * self.traits["jaw_drop"]
        glide = (_JAW_GLIDE_MM_PER_RAD * angle * self.traits["jaw_glide"]) * _JAW_GLIDE_DIRECTION
        hinge = self._jaw_joint()
        hinge[:, 0] = 0.0
        self.rotations.append((hinge, _X_AXIS, angle[:, 0], glide, regions.jaw_weight()))

    def swing_jaw(self, angle: float) -> None:
        """Swing the lower face toward the viewer's right by ``angle`` radians (x the strength),
        about a vertical axis level with the identity's jaw joints, halfway from the midline to
        the right joint (the jaw pivots toward the side it swings to)."""
        hinge = self._jaw_joint()
        hinge[:, 0] *= 0.5
        angle = angle * self.strength
        self.rotations.append((hinge, _Y_AXIS, angle[:, 0], np.zeros_like(hinge), regions.lower_face_weight()))

    def _jaw_joint(self) -> np.ndarray:
        """(count, 3) position of the right jaw joint: beneath the skin in front of the ear."""
        hinge_uv = np.broadcast_to(np.array(_HINGE_CHART_POINT), (self.geometry.count, 1, 2))
        skin = embed(hinge_uv, np.zeros((self.geometry.count, 1)), self.geometry.head)[:, 0, :]
        skin[:, 0] -= _HINGE_DEPTH  # the skin there faces the side: beneath it is toward the midline
        return skin

    def apply(self, vertices: np.ndarray) -> np.ndarray:
        """The deformed (count, n, 3) vertices. Only vertices that move are re-embedded or
        rotated (the regions are local, so this is most of the generator's speed)."""
        # np.take and plain assignment: several times faster than fancy-indexed "+=".
        moved = vertices.copy()
        sliding = np.flatnonzero(self.sliding)
        if sliding.size:
            geometry = self.geometry
            uv = np.take(geometry.uv, sliding, axis=1)
            uv[..., 0] += np.take(self.du, sliding, axis=1)
            uv[..., 1] += np.take(self.dv, sliding, axis=1)
            relief = np.take(geometry.relief, sliding, axis=1) + np.take(self.drelief, sliding, axis=1)
            shift = embed(uv, relief, geometry.head) - np.take(geometry.neutral, sliding, axis=1)
            moved[:, sliding] = np.take(moved, sliding, axis=1) + shift
        for origin, axis, angle, glide, weight in self.rotations:
            turning = np.flatnonzero(weight > _NEGLIGIBLE_WEIGHT)
            before = np.take(moved, turning, axis=1)
            points = before - origin[:, None, :]
            shift = _rotate(points, axis, angle) - points + glide[:, None, :]
            moved[:, turning] = before + weight[turning, None] * shift
        return moved


def _rotate(points: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate (count, n, 3) points about a unit ``axis`` through the origin by ``angle`` (count,)
    radians (Rodrigues' formula)."""
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    cross = np.cross(axis, points)
    dot = np.sum(points * axis, axis=-1, keepdims=True)
    return points * cos + cross * sin + axis * dot * (1.0 - cos)


# Each expression at full intensity, for an average identity. Distances are chart mm (about
# surface mm), relief is mm along the normal, angles are radians.


def _bareteeth(m: _Motion) -> None:
    m.slide(regions.upper_lip_lift_weight(), dv=4.5 * m.strength)
    m.slide(regions.lower_lip_drop_weight(), dv=-4.5 * m.strength)
    m.corner_pull(4.0, 1.0)
    m.lip_relief(-1.5)
    m.slide(regions.relief_term("nasolabial_folds"), relief=-1.0 * m.strength)
    m.open_jaw(0.05)


def _cheeks_in(m: _Motion) -> None:
    m.slide(regions.cheeks_weight(), relief=-6.0 * m.strength)
    m.lip_relief(1.5)
    m.corner_pull(-3.0, 0.0)
    m.open_jaw(0.03)


def _eyebrow(m: _Motion) -> None:
    m.slide(regions.brow_lift_weight(), dv=7.0 * m.strength * m.traits["face_height"])
    m.slide(regions.forehead_creases(), relief=-1.2 * m.strength)
    m.slide(regions.upper_lids_weight(), dv=1.5 * m.strength)


def _high_smile(m: _Motion) -> None:
    m.corner_pull(6.5, 6.5)
    m.slide(regions.cheeks_weight(), dv=3.5 * m.strength, relief=3.0 * m.strength)
    m.slide(regions.upper_lip_lift_weight(), dv=1.5 * m.strength)
    m.slide(regions.relief_term("nasolabial_folds"), relief=-1.0 * m.strength)
    m.slide(regions.relief_term("under_eye"), relief=1.0 * m.strength)
    m.open_jaw(0.035)


def _lips_back(m: _Motion) -> None:
    m.corner_pull(7.0, -0.5)
    m.lip_relief(-2.5)
    m.slide(regions.chin_weight(), relief=1.0 * m.strength)


def _lips_up(m: _Motion) -> None:
    m.slide(regions.upper_lip_lift_weight(), dv=5.0 * m.strength)
    m.slide(regions.lower_lip_drop_weight(), dv=1.5 * m.strength)
    m.slide(regions.alae_weight(), dv=1.5 * m.strength)
    m.slide(regions.relief_term("upper_lip"), relief=1.5 * m.strength)
    m.slide(regions.relief_term("nasolabial_folds"), relief=-1.5 * m.strength)


def _mouth_down(m: _Motion) -> None:
    m.corner_pull(1.0, -6.0)
    m.slide(regions.lower_lip_drop_weight(), dv=-1.5 * m.strength)
    m.slide(regions.relief_term("lower_lip"), relief=1.5 * m.strength)
    m.slide(regions.chin_weight(), relief=2.0 * m.strength)


def _mouth_extreme(m: _Motion) -> None:
    m.corner_pull(4.0, -1.0)
    m.lip_relief(-2.0)
    m.slide(regions.cheeks_weight(), relief=-2.0 * m.strength)
    m.open_jaw(0.3)


def _mouth_middle(m: _Motion) -> None:
    m.corner_pull(-8.0, 0.0)
    m.slide(regions.pucker_weight(), relief=6.0 * m.strength)


def _mouth_open(m: _Motion) -> None:
    m.corner_pull(-2.0, 0.0)
    m.lip_relief(-1.2)
    m.open_jaw(0.25)


def _mouth_side(m: _Motion) -> None:
    m.slide(regions.mouth_region_weight(), du=5.0 * m.strength * m.mouth_scale())
    m.swing_jaw(0.12)


def _mouth_up(m: _Motion) -> None:
    m.slide(regions.mentalis_weight(), dv=5.0 * m.strength)
    m.corner_pull(0.0, -2.0)
    m.slide(regions.relief_term("lower_lip"), relief=2.0 * m.strength)
    m.slide(regions.chin_weight(), relief=2.0 * m.strength)
    m.slide(regions.chin_dimples(), relief=-0.6 * m.strength)


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
    if vertices.shape != (geometry.count, geometry.relief.shape[1], 3):
        expected = (geometry.count, geometry.relief.shape[1], 3)
        raise ValueError(f"vertices must have shape {expected}, got {vertices.shape}")
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
