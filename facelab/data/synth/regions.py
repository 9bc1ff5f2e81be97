"""Where each expression acts: smooth weights on the canonical chart, one value per vertex.

Weights are attached to vertices, so they sit on every identity's own features (its mouth
corners, brows, chin) wherever the identity warp has put them. All are (n,) float64 in [0, 1]
unless stated, cached once per process.
"""

from __future__ import annotations

import functools

import numpy as np

from facelab.data.synth.anatomy import relief_basis
from facelab.data.synth.chart import face_chart
from facelab.data.synth.shapes import gaussian, smoothstep, window

# The jaw's moving part is cut off from the cheek by a line from each mouth corner up and back
# toward the jaw hinge in front of the ear (chart mm).
_JAW_LINE_TARGET = (88.0, -10.0)
# Near a mouth corner the jaw weight changes with the angle around the corner (a fan that opens
# without folding); further away it changes over at most this distance across the line (mm).
_JAW_FAN_SINE = 0.7
_JAW_MAX_TRANSITION = 16.0
# Fraction of the jaw's motion that the lips keep at the mouth corners.
_LIP_CORNER_HOLD = 0.4


def _uv():
    chart = face_chart()
    return chart.uv[:, 0], chart.uv[:, 1], chart


@functools.lru_cache(maxsize=1)
def below_mouth_weight() -> np.ndarray:
    """1 below the mouth line and the jaw lines that continue it from the corners toward the
    ears, 0 above: a hard step only across the mouth slit (upper lip 0, lower lip 1)."""
    u, v, chart = _uv()
    corner_u, mouth_v = chart.mouth_corner_u, chart.mouth_line_v
    side = np.where(u >= 0, 1.0, -1.0)
    local_u, local_v = side * u - corner_u, v - mouth_v  # mirrored so the right corner serves both
    direction = np.array([_JAW_LINE_TARGET[0] - corner_u, _JAW_LINE_TARGET[1] - mouth_v])
    direction /= np.linalg.norm(direction)
    along = local_u * direction[0] + local_v * direction[1]
    above = -local_u * direction[1] + local_v * direction[0]  # signed distance from the jaw line
    radius = np.hypot(local_u, local_v)
    transition = np.maximum(np.minimum(radius * _JAW_FAN_SINE, _JAW_MAX_TRANSITION), 1e-9)
    lateral = smoothstep(1.0, -1.0, above / transition)
    below_mouth_line = (v < mouth_v) | (chart.lip_side < 0)
    medial = np.where(below_mouth_line, 1.0, 0.0)
    weight = np.where(along >= 0.0, lateral, medial)
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def jaw_weight() -> np.ndarray:
    """How much each vertex follows the mandible when it rotates.

    :func:`below_mouth_weight`, except that near the mouth line the lips' sides are held by the
    corners (the modiolus stays with the cheek): the lower lip follows the jaw fully only at its
    middle, so the mouth opens into an oval rather than a rectangle. Rising toward the lip middle
    and toward the chin, the weight never folds the mesh.
    """
    u, v, chart = _uv()
    toward_middle = smoothstep(chart.mouth_corner_u, 0.3 * chart.mouth_corner_u, np.abs(u))
    held = _LIP_CORNER_HOLD + (1.0 - _LIP_CORNER_HOLD) * toward_middle
    depth_below = np.clip(chart.mouth_line_v - v, 0.0, None)
    taper = 1.0 - (1.0 - held) * np.exp(-0.5 * (depth_below / 7.0) ** 2)
    weight = below_mouth_weight() * taper
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def lower_face_weight() -> np.ndarray:
    """Smooth weight of the lower face (lips, chin, jaw) with no step at the slit: for moves that
    carry both lips together."""
    u, v, _ = _uv()
    weight = smoothstep(-30.0, -52.0, v) * smoothstep(85.0, 55.0, np.abs(u))
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def lips_weight() -> np.ndarray:
    """The lips and the skin just around them."""
    u, v, chart = _uv()
    weight = window(np.abs(u), -1.0, chart.mouth_corner_u, 8.0) * window(v, chart.mouth_line_v - 11.0,
                                                                      chart.mouth_line_v + 9.0, 7.0)
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def mouth_region_weight() -> np.ndarray:
    """A broad, gentle weight centred on the mouth: for shifting the whole mouth."""
    u, v, chart = _uv()
    weight = gaussian(u, v, 0.0, chart.mouth_line_v, 20.0, 12.0)
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=2)
def corner_weight(right: bool) -> np.ndarray:
    """One mouth corner's pull: 1 at the corner, reaching along the lips (which follow the
    corner) further than into the cheek."""
    u, v, chart = _uv()
    along_lips = (u if right else -u) - chart.mouth_corner_u
    width_u = np.where(along_lips < 0.0, 15.0, 13.0)
    height = v - chart.mouth_line_v
    width_v = np.where(height > 0.0, 12.0, 9.0)  # gentler toward the cheek, which bunches up
    weight = np.exp(-0.5 * (along_lips / width_u) ** 2 - 0.5 * (height / width_v) ** 2)
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def lateral_sign() -> np.ndarray:
    """Smooth sign of u: -1 on the viewer's left, +1 on the right, 0 on the midline."""
    u, _, _ = _uv()
    sign = np.tanh(u / 8.0)
    sign.setflags(write=False)
    return sign


@functools.lru_cache(maxsize=1)
def cheeks_weight() -> np.ndarray:
    u, v, _ = _uv()
    weight = gaussian(u, v, 38.0, -26.0, 13.0, 12.0) + gaussian(u, v, -38.0, -26.0, 13.0, 12.0)
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def brow_lift_weight() -> np.ndarray:
    """Brows and forehead: 1 along the brows, fading to 0 at the upper lids and toward the top
    of the crop (the scalp moves less, so the forehead skin bunches between)."""
    u, v, _ = _uv()
    weight = smoothstep(19.0, 31.0, v) * smoothstep(78.0, 38.0, v) * smoothstep(58.0, 40.0, np.abs(u))
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def forehead_weight() -> np.ndarray:
    u, v, _ = _uv()
    weight = window(v, 40.0, 58.0, 5.0) * smoothstep(50.0, 28.0, np.abs(u))
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def chin_weight() -> np.ndarray:
    u, v, _ = _uv()
    weight = gaussian(u, v, 0.0, -70.0, 18.0, 10.0)
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def mentalis_weight() -> np.ndarray:
    """Lower lip and chin pushed up together by the chin muscle."""
    u, v, _ = _uv()
    weight = gaussian(u, v, 0.0, -66.0, 24.0, 14.0)
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def upper_lip_lift_weight() -> np.ndarray:
    """Upper lip and the skin above it up to the nose, 0 on the lower lip; fading over ~17 mm
    so that lifting the lip bunches the skin below the nose without folding it."""
    u, v, chart = _uv()
    weight = ((1.0 - below_mouth_weight()) * smoothstep(chart.mouth_line_v + 21.0, chart.mouth_line_v + 4.0, v)
              * window(np.abs(u), -1.0, chart.mouth_corner_u + 2.0, 12.0))
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def lower_lip_drop_weight() -> np.ndarray:
    """Lower lip and the skin below it, fading out toward the chin (gently, so pulling it down
    stretches rather than folds the skin)."""
    u, v, chart = _uv()
    weight = (jaw_weight() * smoothstep(chart.mouth_line_v - 24.0, chart.mouth_line_v - 6.0, v)
              * window(np.abs(u), -1.0, chart.mouth_corner_u + 2.0, 12.0))
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def pucker_weight() -> np.ndarray:
    """Lips pushed forward when puckering: most at the middle of the mouth."""
    u, v, chart = _uv()
    weight = gaussian(u, v, 0.0, chart.mouth_line_v, 16.0, 9.0)
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def upper_lids_weight() -> np.ndarray:
    """Upper lids below the brows, stretched upward when the brows rise."""
    u, v, _ = _uv()
    weight = gaussian(u, v, 33.0, 22.0, 12.0, 5.0) + gaussian(u, v, -33.0, 22.0, 12.0, 5.0)
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def alae_weight() -> np.ndarray:
    """The nose wings, lifted with the upper lip."""
    u, v, _ = _uv()
    weight = gaussian(u, v, 13.0, -21.0, 8.0, 6.0) + gaussian(u, v, -13.0, -21.0, 8.0, 6.0)
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def forehead_creases() -> np.ndarray:
    """Horizontal bands across the forehead, 8 mm apart, where raised brows wrinkle it."""
    _, v, _ = _uv()
    weight = forehead_weight() * (0.5 + 0.5 * np.cos(2.0 * np.pi * (v - 44.0) / 8.0))
    weight.setflags(write=False)
    return weight


@functools.lru_cache(maxsize=1)
def chin_dimples() -> np.ndarray:
    """A bumpy pattern (-1..1) over the chin: the "peau d'orange" of a tensed chin muscle."""
    u, v, _ = _uv()
    weight = chin_weight() * np.cos(u / 2.5) * np.cos((v + 70.0) / 2.5)
    weight.setflags(write=False)
    return weight


def relief_term(name: str) -> np.ndarray:
    """A unit relief field of the anatomy (e.g. "upper_lip"), normalised to a peak of 1."""
    basis = relief_basis()
    field = basis.fields[basis.index(name)]
    return field / np.abs(field).max()
