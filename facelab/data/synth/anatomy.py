"""The analytic face: chart relief, identity warp handles and the embedding into 3D.

A face is built in three layers, each smooth in the chart coordinates (u, v) of
:mod:`facelab.data.synth.chart`:

1. **Relief** (mm along the surface normal): a weighted sum of fixed basis terms (brow ridge,
   eye sockets, closed lids, nose, lips, chin...), each defined on the canonical chart, so a
   feature stays attached to the same vertices. Identities change the weights.
2. **Warp handles**: smooth local translations and scalings of the chart (eyes, brows, nose,
   mouth, chin, cheekbones). They move and resize features in a semantically consistent way:
   the vertex at the mouth corner stays the mouth corner when the mouth widens.
3. **Embedding**: the warped chart is wrapped around an elliptic "head" whose half-width A(v),
   depth B(v) and midline profile M(v) vary with height, then displaced by the relief along the
   head surface's normal. Coordinates: mm, x to the viewer's right, y up, z toward the viewer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from facelab.data.synth.chart import face_chart
from facelab.data.synth.shapes import (
    dome,
    gaussian,
    groove,
    mirrored_dome,
    mirrored_gaussian,
    smootherstep,
    smoothstep,
    smoothstep_and_slope,
    window,
)

# Landmark heights on the canonical chart (mm).
NASION_V = 22.0
NOSE_TIP_V = -17.0
SUBNASALE_V = -29.0
EYE_U, EYE_V = 33.0, 16.0

# Random low-frequency shape fields: fixed Gaussian bumps (u, v, width) whose weights are drawn
# per identity, for variation that no named feature parameter covers.
RANDOM_FIELD_BUMPS = (
    (0.0, 45.0, 24.0), (-42.0, 30.0, 20.0), (42.0, 30.0, 20.0), (-50.0, -22.0, 20.0),
    (50.0, -22.0, 20.0), (0.0, -5.0, 16.0), (-28.0, -70.0, 20.0), (28.0, -70.0, 20.0),
)


def _lid_line_v(abs_u):
    """Chart v of the closed-eye fissure at |u| (medial canthus at |u|=19, lateral at 47)."""
    t = np.clip((abs_u - 19.0) / 28.0, 0.0, 1.0)
    return 14.6 + 2.4 * t - 1.8 * np.sin(np.pi * t)


def _relief_terms(u, v, lip_side, corner_u, mouth_v) -> dict[str, tuple[float, np.ndarray]]:
    """Every relief term as (default amplitude in mm, unit-amplitude field (n,))."""
    au = np.abs(u)
    terms: dict[str, tuple[float, np.ndarray]] = {}

    # Forehead and brows.
    terms["brow_ridge"] = (3.2, mirrored_gaussian(u, v, 27.0, 33.5, 15.0, 5.5))
    terms["glabella"] = (2.0, gaussian(u, v, 0.0, 31.0, 9.0, 7.0))
    terms["frontal_bossing"] = (2.0, mirrored_gaussian(u, v, 24.0, 52.0, 16.0, 13.0))
    terms["temples"] = (-3.0, mirrored_gaussian(u, v, 62.0, 28.0, 11.0, 15.0))

    # Eyes: a socket, the eyeball under closed lids, the lid fissure and the upper-lid crease.
    terms["eye_sockets"] = (-11.0, mirrored_gaussian(u, v, EYE_U, EYE_V + 1.0, 14.0, 10.5))
    terms["eyelids"] = (7.0, mirrored_dome(u, v, EYE_U, EYE_V + 0.5, 15.0, 10.5) ** 0.75)
    lid_v = _lid_line_v(au)
    t = np.clip((au - 19.0) / 28.0, 0.0, 1.0)
    in_eye = window(au, 19.0, 47.0, 2.5)
    terms["lid_fissure"] = (-1.6, groove(v - lid_v, 0.75) * in_eye)
    above_fissure = smoothstep(lid_v - 0.3, lid_v + 1.5, v)
    terms["upper_lid_overhang"] = (0.9, above_fissure * dome(au, v, EYE_U, EYE_V + 1.0, 14.0, 9.0))
    crease_v = lid_v + 7.0 * np.sin(np.pi * t) ** 0.7
    terms["lid_crease"] = (-1.0, groove(v - crease_v, 1.1) * window(au, 21.0, 45.0, 3.0))
    terms["under_eye"] = (-1.2, mirrored_gaussian(u, v, 31.0, 5.0, 11.0, 5.0))

    # Nose: a ridge from nasion to tip whose height ramps up and width grows toward the base.
    sigma = 5.2 + 2.6 * smoothstep(18.0, NOSE_TIP_V, v)
    cross = np.exp(-0.5 * (u / sigma) ** 2)
    top = smoothstep(36.0, NASION_V - 4.0, v)
    bottom = smootherstep(SUBNASALE_V + 1.0, NOSE_TIP_V - 3.0, v)
    terms["nose_bridge"] = (6.0, cross * top * bottom)
    terms["nose_projection"] = (15.0, cross * smoothstep(NASION_V, NOSE_TIP_V + 1.0, v) * bottom)
    terms["nose_tip"] = (4.0, gaussian(u, v, 0.0, NOSE_TIP_V + 1.0, 7.0, 5.0) * bottom)
    terms["alae"] = (5.5, mirrored_dome(u, v, 12.5, -21.0, 8.0, 7.0))
    ala_distance = np.sqrt(((au - 12.5) / 8.0) ** 2 + ((v + 21.0) / 7.0) ** 2)
    terms["alar_grooves"] = (-1.8, groove(ala_distance - 1.05, 0.14) * smoothstep(12.0, 16.0, au))
    terms["nostrils"] = (-2.5, mirrored_gaussian(u, v, 6.5, -25.0, 2.5, 1.8))

    # Cheeks and the folds from the nose wings to the mouth corners.
    terms["cheekbones"] = (4.5, mirrored_gaussian(u, v, 46.0, 2.0, 14.0, 10.0))
    terms["cheeks"] = (2.5, mirrored_gaussian(u, v, 38.0, -24.0, 14.0, 14.0))
    fold_u = 18.0 + 16.0 * np.clip((-22.0 - v) / 32.0, 0.0, None) ** 1.3
    fold_span = window(v, -46.0, -22.0, 5.0)
    terms["nasolabial_folds"] = (-1.4, groove(au - fold_u, 2.8) * fold_span)
    terms["nasolabial_bulges"] = (1.2, groove(au - fold_u - 6.0, 4.5) * fold_span)

    # Mouth region: the dental arch pushes it forward; philtrum above the upper lip.
    terms["muzzle"] = (6.0, gaussian(u, v, 0.0, mouth_v - 2.0, 24.0, 17.0))
    terms["philtrum"] = (-0.6, gaussian(u, v, 0.0, -36.0, 4.5, 5.5))

    # Lips. The slit's two sides take the upper or the lower lip's value; beyond the corners both
    # lips vanish, so the relief is continuous everywhere except across the slit.
    span = np.clip(1.0 - (u / corner_u) ** 2, 0.0, None)
    upper = (v > mouth_v) | (lip_side > 0)
    lower = (v < mouth_v) | (lip_side < 0)
    bow = 1.4 * (np.exp(-0.5 * ((au - 5.5) / 2.5) ** 2)) - 0.5 * np.exp(-0.5 * (u / 2.0) ** 2)
    # Each lip's profile across it (t: 0 at the slit, 1 at its outer border) rises from 0 on the
    # slit, so the closed lips meet there, to a rounded peak, then eases into the skin.
    upper_height = np.maximum(8.5 * span**0.5 + bow * span, 0.5)
    tu = np.clip(v - mouth_v, 0.0, None) / upper_height
    upper_profile = (np.exp(-0.5 * ((tu - 0.7) / np.where(tu < 0.7, 0.4, 0.7)) ** 2)
                     * (1.0 - np.exp(-((tu / 0.3) ** 2))))
    terms["upper_lip"] = (4.5, np.where(upper, upper_profile * span**0.8, 0.0))
    terms["vermilion_border"] = (0.5, np.where(upper, groove(tu - 1.0, 0.1) * span**0.8, 0.0))
    lower_height = np.maximum(10.5 * span**0.8, 0.5)
    tl = np.clip(mouth_v - v, 0.0, None) / lower_height
    lower_profile = (np.exp(-0.5 * ((tl - 0.5) / np.where(tl < 0.5, 0.35, 0.7)) ** 2)
                     * (1.0 - np.exp(-((tl / 0.25) ** 2))))
    terms["lower_lip"] = (5.5, np.where(lower, lower_profile * span**1.2, 0.0))
    terms["mouth_line"] = (-2.0, groove(v - mouth_v, 1.6) * window(au, -1.0, corner_u - 4.0, 5.0))
    terms["commissures"] = (-1.0, mirrored_gaussian(u, v, corner_u, mouth_v, 4.0, 4.0))

    # Chin and jaw: the mandible's lower border turns the surface under, toward the neck.
    terms["labiomental_groove"] = (-3.0, gaussian(u, v, 0.0, -63.0, 15.0, 3.5))
    terms["chin"] = (5.0, gaussian(u, v, 0.0, -75.0, 12.0, 8.0))
    jaw_v = -86.0 + 40.0 * np.minimum(au / 64.0, 1.15) ** 1.7
    # Behind the jaw angle the crop reaches the neck, which does not recede as sharply.
    terms["under_jaw"] = (-10.0, smootherstep(jaw_v - 2.0, jaw_v - 24.0, v) * smoothstep(85.0, 60.0, au))
    terms["jaw_angles"] = (1.5, mirrored_gaussian(u, v, 64.0, -44.0, 10.0, 11.0))

    for k, (cu, cv, width) in enumerate(RANDOM_FIELD_BUMPS):
        terms[f"random_field_{k}"] = (1.0, gaussian(u, v, cu, cv, width, width))
    return terms


@dataclass(frozen=True)
class ReliefBasis:
    """Relief terms on the canonical chart.

    Attributes:
        names: the term names, in row order.
        default_amplitudes: (K,) mm, the template face's weights.
        fields: (K, n) unit-amplitude fields.
    """

    names: tuple[str, ...]
    default_amplitudes: np.ndarray
    fields: np.ndarray

    def index(self, name: str) -> int:
        return self.names.index(name)


@functools.lru_cache(maxsize=1)
def relief_basis() -> ReliefBasis:
    """The relief terms evaluated on the face chart (built once per process, read-only)."""
    chart = face_chart()
    u, v = chart.uv[:, 0], chart.uv[:, 1]
    terms = _relief_terms(u, v, chart.lip_side, chart.mouth_corner_u, chart.mouth_line_v)
    names = tuple(terms)
    amplitudes = np.array([terms[name][0] for name in names])
    fields = np.stack([terms[name][1] for name in names])
    for array in (amplitudes, fields):
        array.setflags(write=False)
    return ReliefBasis(names, amplitudes, fields)


# Warp handles: (name, centre u, centre v, radius u, radius v, flat-top exponent). A handle
# translates and scales the chart inside its window; the mouth's window is flat over the lips
# so the whole slit moves as one.
WARP_HANDLES = (
    ("eye_right", EYE_U, EYE_V, 15.0, 12.0, 1.0),
    ("eye_left", -EYE_U, EYE_V, 15.0, 12.0, 1.0),
    ("brow_right", 30.0, 34.0, 16.0, 8.0, 1.0),
    ("brow_left", -30.0, 34.0, 16.0, 8.0, 1.0),
    ("nose_base", 0.0, -20.0, 17.0, 10.0, 1.0),
    ("mouth", 0.0, -48.0, 34.0, 14.0, 2.0),
    ("chin", 0.0, -76.0, 20.0, 12.0, 1.0),
    ("cheekbone_right", 46.0, 0.0, 16.0, 12.0, 1.0),
    ("cheekbone_left", -46.0, 0.0, 16.0, 12.0, 1.0),
)
WARP_HANDLE_NAMES = tuple(handle[0] for handle in WARP_HANDLES)


@functools.lru_cache(maxsize=1)
def warp_windows() -> tuple[np.ndarray, np.ndarray]:
    """(H, n) window weights of the warp handles and (H, 2) their centres, canonical chart."""
    uv = face_chart().uv
    weights, centres = [], []
    for _, cu, cv, ru, rv, flatness in WARP_HANDLES:
        d2 = ((uv[:, 0] - cu) / ru) ** 2 + ((uv[:, 1] - cv) / rv) ** 2
        weights.append(np.exp(-0.5 * d2**flatness))
        centres.append((cu, cv))
    weights, centres = np.stack(weights), np.array(centres)
    weights.setflags(write=False)
    centres.setflags(write=False)
    return weights, centres


def warp_chart(translation: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Chart positions of every vertex after the identity's warp.

    Args:
        translation: (count, H, 2) mm per handle.
        scale: (count, H, 2) per-axis scale factors per handle (1 = unchanged).

    Returns:
        (count, n, 2) warped chart coordinates, mm.
    """
    weights, centres = warp_windows()
    uv = face_chart().uv
    warped = np.repeat(uv[None], translation.shape[0], axis=0)
    for h in range(len(centres)):
        offset = translation[:, h, None, :] + (scale[:, h, None, :] - 1.0) * (uv - centres[h])
        warped += weights[h, None, :, None] * offset
    return warped


@dataclass(frozen=True)
class HeadShape:
    """Per-identity head proportions, each (count, 1) so they broadcast over vertices.

    Attributes:
        width: scale of the head's half-width A(v).
        jaw_width: extra scale of A(v) on the lower face.
        depth: scale of the head's depth B(v) (how fast the face wraps back to the ears).
        forehead_slope: scale of the forehead's backward slope.
        chin_recession: scale of the under-chin turn.
        height: scale of all heights (y).
        relief: scale of all relief (how pronounced the features are).
    """

    width: np.ndarray
    jaw_width: np.ndarray
    depth: np.ndarray
    forehead_slope: np.ndarray
    chin_recession: np.ndarray
    height: np.ndarray
    relief: np.ndarray


def _template_half_width_and_slope(v):
    """A0(v), the template head's half-width (mm) at chart height v, and its slope. A0 is also
    the radius the chart wraps on, so u is roughly arc length around the template's head."""
    above = np.maximum(v - 5.0, 0.0)
    below = np.maximum(5.0 - v, 0.0)
    return 72.0 - 0.0035 * above**2 - 0.0036 * below**2, -0.007 * above + 0.0072 * below


def _head_profiles(v, head: HeadShape):
    """Half-width A, depth B and midline M of the head at heights v, each with its v-derivative."""
    template_width, template_slope = _template_half_width_and_slope(v)
    lower_face, lower_face_slope = smoothstep_and_slope(-10.0, -60.0, v)
    jaw = head.jaw_width - 1.0
    half_width = head.width * template_width * (1.0 + jaw * lower_face)
    d_half_width = head.width * (template_slope * (1.0 + jaw * lower_face)
                                 + template_width * jaw * lower_face_slope)
    jaw_depth, jaw_depth_slope = smoothstep_and_slope(-20.0, -85.0, v)
    depth = head.depth * (92.0 - 18.0 * jaw_depth)
    d_depth = head.depth * (-18.0 * jaw_depth_slope)
    forehead = np.maximum(v - 28.0, 0.0)  # the forehead slopes back above the brows
    under_chin = np.maximum(-80.0 - v, 0.0)  # and the surface turns under below the chin
    midline = head.forehead_slope * (-0.011 * forehead**2) + head.chin_recession * (-0.06 * under_chin**2)
    d_midline = head.forehead_slope * (-0.022 * forehead) + head.chin_recession * (0.12 * under_chin)
    return (half_width, d_half_width), (depth, d_depth), (midline, d_midline), template_width


def embed(uv: np.ndarray, relief: np.ndarray, head: HeadShape) -> np.ndarray:
    """Wrap chart positions around the head and displace them by the relief.

    Args:
        uv: (count, n, 2) chart coordinates, mm.
        relief: (count, n) displacement along the head surface's normal, mm.
        head: the identities' head proportions.

    Returns:
        (count, n, 3) float64 vertices, mm.
    """
    u, v = uv[..., 0], uv[..., 1]
    (half_width, d_half_width), (depth, d_depth), (midline, d_midline), wrap_radius = _head_profiles(v, head)
    theta = u / wrap_radius
    sin, cos = np.sin(theta), np.cos(theta)
    # Normal of S(theta, v) = (A sin, v, M + B (cos - 1)): the cross product of its two tangents.
    normal_x = depth * sin
    normal_y = -d_half_width * depth * sin**2 - half_width * cos * (d_midline + d_depth * (cos - 1.0))
    normal_z = half_width * cos
    displacement = head.relief * relief / np.sqrt(normal_x**2 + normal_y**2 + normal_z**2)
    vertices = np.empty(u.shape + (3,))
    vertices[..., 0] = half_width * sin + displacement * normal_x
    vertices[..., 1] = head.height * (v + displacement * normal_y)
    vertices[..., 2] = midline + depth * (cos - 1.0) + displacement * normal_z
    return vertices
