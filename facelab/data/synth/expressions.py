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
from facelab.data.synth.jaw import NEGLIGIBLE_WEIGHT, X_AXIS, Y_AXIS, jaw_joint, rotate_weighted

EXPRESSIONS: tuple[str, ...] = (
    "bareteeth", "cheeks_in", "eyebrow", "high_smile", "lips_back", "lips_up",
    "mouth_down", "mouth_extreme", "mouth_middle", "mouth_open", "mouth_side", "mouth_up",
)

# When the jaw opens, its joints also glide forward and down (mm per radian of opening, scaled
# per person by "jaw_glide").
_JAW_GLIDE_MM_PER_RAD = 14.0
_JAW_GLIDE_DIRECTION = np.array([0.0, -0.35, 1.0]) / np.hypot(0.35, 1.0)

# How much further than average each part of an expression goes for a person, from the shape of
# their face (standard scores of visible identity traits): gain = exp(sum of weight x score),
# the exponent clipped to +-_PART_GAIN_LIMIT so no face is pushed past what skin and jaw allow.
# Each part answers to different traits, so the parts of one expression keep no fixed ratio
# from person to person: knowing how far the lips moved does not say how far the jaw did
# without looking at the face.
_PART_GAINS: dict[str, dict[str, float]] = {
    "jaw": {"face_height": 0.25, "chin_height": 0.2},         # a longer lower face swings further
    "jaw_swing": {"jaw_width": -0.3},                           # a wide jaw swings less
    "corners": {"cheek_fullness": -0.3, "relief_depth": 0.15},  # full cheeks hold the corners back
    "lips": {"upper_lip": 0.25, "lower_lip": 0.15},             # full lips press and pout further
    "pucker": {"lip_protrusion": 0.3},
    "brows": {"forehead_slope": 0.3, "brow_prominence": -0.15},
    "cheeks": {"cheek_fullness": 0.3},                          # full cheeks bulge and hollow more
}
_PART_GAIN_LIMIT = 0.35

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

    def gain(self, part: str) -> np.ndarray:
        """(count, 1) how far this person moves ``part`` (a key of ``_PART_GAINS``) relative to
        an average face."""
        exponent = sum(weight * self.geometry.score(trait) for trait, weight in _PART_GAINS[part].items())
        return np.exp(np.clip(exponent, -_PART_GAIN_LIMIT, _PART_GAIN_LIMIT))

    def slide(self, region: np.ndarray, du=0.0, dv=0.0, relief=0.0) -> None:
        """Move the skin over ``region`` (n,): by ``du``/``dv`` mm in the chart (lateral u is
        toward the viewer's right) and ``relief`` mm out along the normal, each a number or a
        (count, 1) or (count, n) array, scaled by the region's weight."""
        for total, amount in ((self.du, du), (self.dv, dv), (self.drelief, relief)):
            if not (np.isscalar(amount) and amount == 0.0):
                total += amount * region
        self.sliding |= np.abs(region) > NEGLIGIBLE_WEIGHT

    def mouth_scale(self) -> np.ndarray:
        return self.traits["mouth_width"] * self.traits["face_width"]

    def corner_pull(self, lateral_mm: float, up_mm: float) -> None:
        """Move both mouth corners (outward ``lateral_mm``, up ``up_mm``), the lips following.
        Each person pulls in their own direction ("smile_angle") and harder on one side
        ("expression_asymmetry")."""
        corners = regions.corner_weight(True) + regions.corner_weight(False)
        cos, sin = np.cos(self.traits["smile_angle"]), np.sin(self.traits["smile_angle"])
        stronger_side = 1.0 + self.traits["expression_asymmetry"] * regions.lateral_sign()
        amount = self.strength * self.gain("corners") * self.mouth_scale() * stronger_side
        self.slide(corners, du=(lateral_mm * cos - up_mm * sin) * amount * regions.lateral_sign(),
                   dv=(lateral_mm * sin + up_mm * cos) * amount)

    def lip_relief(self, mm: float) -> None:
        """Thicken (positive) or thin and press (negative) the lips, as firmly as this person
        holds them ("lip_tension")."""
        self.slide(regions.lips_weight(), relief=mm * self.strength * self.gain("lips") * self.traits["lip_tension"])

    def open_jaw(self, angle: float) -> None:
        """Rotate the jaw open by ``angle`` radians (x the strength) about the axis through both
        of the identity's jaw joints, the joints gliding forward as it opens. Some people drop
        the jaw further than others ("jaw_drop")."""
        angle = angle * self.strength * self.gain("jaw") * self.traits["jaw_drop"]
        glide = (_JAW_GLIDE_MM_PER_RAD * angle * self.traits["jaw_glide"]) * _JAW_GLIDE_DIRECTION
        hinge = jaw_joint(self.geometry.head, self.geometry.count)
        hinge[:, 0] = 0.0
        self.rotations.append((hinge, X_AXIS, angle[:, 0], glide, regions.jaw_weight()))

    def swing_jaw(self, angle: float) -> None:
        """Swing the lower face toward the viewer's right by ``angle`` radians (x the strength),
        about a vertical axis level with the identity's jaw joints, halfway from the midline to
        the right joint (the jaw pivots toward the side it swings to)."""
        hinge = jaw_joint(self.geometry.head, self.geometry.count)
        hinge[:, 0] *= 0.5
        angle = angle * self.strength * self.gain("jaw_swing")
        self.rotations.append((hinge, Y_AXIS, angle[:, 0], np.zeros_like(hinge), regions.lower_face_weight()))

    def apply(self, vertices: np.ndarray) -> np.ndarray:
        """The deformed (count, n, 3) vertices. Only vertices that move are re-embedded or
        rotated (the regions are local, so this is most of the generator's speed)."""
        moved = vertices.copy()
        sliding = np.flatnonzero(self.sliding)
        if sliding.size:
            geometry = self.geometry
            uv = np.take(geometry.uv, sliding, axis=1)
            relief = np.take(geometry.relief, sliding, axis=1)
            before = embed(uv, relief, geometry.head)
            uv[..., 0] += np.take(self.du, sliding, axis=1)
            uv[..., 1] += np.take(self.dv, sliding, axis=1)
            relief = relief + np.take(self.drelief, sliding, axis=1)
            shift = embed(uv, relief, geometry.head) - before
            # np.take and plain assignment: several times faster than fancy-indexed "+=".
            moved[:, sliding] = np.take(moved, sliding, axis=1) + shift
        for origin, axis, angle, glide, weight in self.rotations:
            moved = rotate_weighted(moved, origin, axis, angle, glide, weight)
        return moved


# Each expression at full intensity, for an average identity. Distances are chart mm (about
# surface mm), relief is mm along the normal, angles are radians.


def _bareteeth(m: _Motion) -> None:
    m.slide(regions.upper_lip_lift_weight(), dv=4.5 * m.strength)
    m.slide(regions.lower_lip_drop_weight(), dv=-4.5 * m.strength)
    m.corner_pull(4.0, 1.0)
    m.lip_relief(-1.5)
    m.slide(regions.relief_term("nasolabial_folds"), relief=-1.0 * m.strength)
    m.open_jaw(0.08)


def _cheeks_in(m: _Motion) -> None:
    m.slide(regions.cheeks_weight(), relief=-9.0 * m.strength * m.gain("cheeks"))
    m.lip_relief(1.5)
    m.corner_pull(-3.0, 0.0)
    m.open_jaw(0.03)


def _eyebrow(m: _Motion) -> None:
    m.slide(regions.brow_lift_weight(), dv=11.0 * m.strength * m.gain("brows") * m.traits["face_height"])
    m.slide(regions.forehead_creases(), relief=-1.8 * m.strength)
    m.slide(regions.upper_lids_weight(), dv=2.5 * m.strength)


def _high_smile(m: _Motion) -> None:
    m.corner_pull(6.5, 6.5)
    m.slide(regions.cheeks_weight(), dv=3.5 * m.strength * m.gain("cheeks"), relief=3.0 * m.strength * m.gain("cheeks"))
    m.slide(regions.upper_lip_lift_weight(), dv=1.5 * m.strength)
    m.slide(regions.relief_term("nasolabial_folds"), relief=-1.0 * m.strength)
    m.slide(regions.relief_term("under_eye"), relief=1.0 * m.strength)
    m.open_jaw(0.06)


def _lips_back(m: _Motion) -> None:
    m.corner_pull(11.0, -1.0)
    m.lip_relief(-3.5)
    m.slide(regions.chin_weight(), relief=2.0 * m.strength)


def _lips_up(m: _Motion) -> None:
    m.slide(regions.upper_lip_lift_weight(), dv=9.0 * m.strength)
    m.slide(regions.lower_lip_drop_weight(), dv=3.0 * m.strength)
    m.slide(regions.alae_weight(), dv=2.5 * m.strength)
    m.slide(regions.relief_term("upper_lip"), relief=3.0 * m.strength)
    m.slide(regions.relief_term("nasolabial_folds"), relief=-2.5 * m.strength)


def _mouth_down(m: _Motion) -> None:
    m.corner_pull(2.0, -8.0)
    m.slide(regions.lower_lip_drop_weight(), dv=-3.0 * m.strength)
    m.slide(regions.relief_term("lower_lip"), relief=3.0 * m.strength)
    m.slide(regions.chin_weight(), relief=3.5 * m.strength)


def _mouth_extreme(m: _Motion) -> None:
    m.corner_pull(4.0, -1.0)
    m.lip_relief(-2.0)
    m.slide(regions.cheeks_weight(), relief=-2.0 * m.strength * m.gain("cheeks"))
    m.open_jaw(0.34)


def _mouth_middle(m: _Motion) -> None:
    m.corner_pull(-9.0, 0.0)
    m.slide(regions.pucker_weight(), relief=7.5 * m.strength * m.gain("pucker"))


def _mouth_open(m: _Motion) -> None:
    m.corner_pull(-2.0, 0.0)
    m.lip_relief(-1.2)
    m.open_jaw(0.30)


def _mouth_side(m: _Motion) -> None:
    m.slide(regions.mouth_region_weight(), du=5.0 * m.strength * m.mouth_scale())
    m.swing_jaw(0.16)


def _mouth_up(m: _Motion) -> None:
    m.slide(regions.mentalis_weight(), dv=9.0 * m.strength)
    m.corner_pull(0.0, -4.0)
    m.slide(regions.relief_term("lower_lip"), relief=3.5 * m.strength)
    m.slide(regions.chin_weight(), relief=3.5 * m.strength)
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
