"""The face chart: the fixed registered topology of SynthFaces, laid out in a 2D parameter domain.

Every synthetic mesh is this one triangulation with its vertices placed in 3D by an identity
(:mod:`facelab.data.synth.anatomy`). Chart coordinates (u, v) are millimetres: u runs along the
face surface from the midline toward the viewer's right (roughly arc length around the head),
v is height with 0 at cheekbone level. The chart is a face-mask outline filled with an
equilateral lattice (Delaunay-triangulated, so every interior vertex has six neighbours), locally
contracted around the eyes, nose and mouth for extra detail there.

The mouth is a slit: the lattice row along the mouth line is cut between the two mouth corners,
its vertices duplicated, so the lower lip can move away from the upper lip (CoMA and FLAME meshes
also have the mouth as an opening). The mesh therefore has two boundary loops: the outer rim
and the lips.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay, cKDTree

# Lattice spacing (mm): the chart holds ~4,400 vertices, and the mouth corners fall on lattice
# points of the mouth row, this many spacings from the midline.
LATTICE_SPACING = 2.65
MOUTH_LINE_V = -48.0
_MOUTH_CORNER_STEPS = 10

# Face-mask outline: two superellipse halves about this centre (chart mm).
_OUTLINE_CENTRE_V = -12.0
_OUTLINE_HALF_WIDTH = 96.0
_OUTLINE_TOP, _OUTLINE_TOP_EXPONENT = 80.0, 2.6
_OUTLINE_BOTTOM, _OUTLINE_BOTTOM_EXPONENT = 80.0, 2.0

# Local contractions (centre u, centre v, strength, radius): denser vertices where detail is.
_CONTRACTIONS = (
    (33.0, 16.0, 0.42, 11.0),   # right eye
    (-33.0, 16.0, 0.42, 11.0),  # left eye
    (0.0, -16.0, 0.22, 10.0),   # nose tip and alae
    (0.0, MOUTH_LINE_V, 0.25, 16.0),  # lips; centred on the mouth row, which stays straight
)


@dataclass(frozen=True)
class FaceChart:
    """The registered topology with each vertex's chart position.

    Attributes:
        uv: (n, 2) float64 chart coordinates in mm.
        lip_side: (n,) int8: +1 for upper-lip vertices on the mouth slit, -1 for their lower-lip
            duplicates, 0 elsewhere.
        triangles: (m, 3) int64, counter-clockwise in the chart (normals toward the viewer).
        mouth_corners: (2,) int64 vertex indices of the right and the left mouth corner (the
            two ends of the slit, shared by both lips).
        mouth_corner_u: chart u of the right mouth corner (the left one is at -mouth_corner_u).
        mouth_line_v: chart v of the mouth slit.
    """

    uv: np.ndarray
    lip_side: np.ndarray
    triangles: np.ndarray
    mouth_corners: np.ndarray
    mouth_corner_u: float
    mouth_line_v: float

    @property
    def n_vertices(self) -> int:
        return len(self.uv)


def _outline_radius(angle: np.ndarray) -> np.ndarray:
    """Distance (mm) from the outline centre to the outline in direction ``angle`` (radians)."""
    c, s = np.abs(np.cos(angle)), np.sin(angle)
    top = s >= 0
    extent = np.where(top, _OUTLINE_TOP, _OUTLINE_BOTTOM)
    exponent = np.where(top, _OUTLINE_TOP_EXPONENT, _OUTLINE_BOTTOM_EXPONENT)
    return 1.0 / ((c / _OUTLINE_HALF_WIDTH) ** exponent + (np.abs(s) / extent) ** exponent) ** (1.0 / exponent)


def _outline_points(spacing: float) -> np.ndarray:
    """Points evenly spaced along the outline, mirror-symmetric about u = 0, (k, 2)."""
    angle = np.linspace(np.pi / 2, np.pi / 2 + 2 * np.pi, 20001)
    radius = _outline_radius(angle)
    dense = np.stack([radius * np.cos(angle), _OUTLINE_CENTRE_V + radius * np.sin(angle)], axis=1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    count = int(round(arc[-1] / spacing))
    targets = np.arange(count) * arc[-1] / count
    return np.stack([np.interp(targets, arc, dense[:, 0]), np.interp(targets, arc, dense[:, 1])], axis=1)


def _interior_lattice(spacing: float) -> np.ndarray:
    """Equilateral lattice points inside the outline and at least half a spacing from it, (k, 2).

    Row 0 lies on the mouth line with a point on the midline, so the lattice is symmetric about
    u = 0 and has points exactly at the mouth corners.
    """
    row_height = spacing * np.sqrt(3.0) / 2.0
    rows = np.arange(-30, 56)
    columns = np.arange(-45, 46)
    j, i = np.meshgrid(rows, columns, indexing="ij")
    offset = np.where(j % 2 == 0, 0.0, 0.5)
    points = np.stack([(i + offset) * spacing, MOUTH_LINE_V + j * row_height], axis=-1).reshape(-1, 2)
    relative = points - [0.0, _OUTLINE_CENTRE_V]
    inside = np.hypot(*relative.T) < _outline_radius(np.arctan2(relative[:, 1], relative[:, 0]))
    clearance, _ = cKDTree(_outline_points(spacing / 20.0)).query(points)
    return points[inside & (clearance > 0.5 * spacing)]


def _contract(points: np.ndarray) -> np.ndarray:
    """Pull points toward the feature centres (a smooth, injective warp of the plane)."""
    warped = points.copy()
    for cu, cv, strength, radius in _CONTRACTIONS:
        offset = points - [cu, cv]
        falloff = np.exp(-0.5 * np.sum(offset**2, axis=1) / radius**2)
        warped -= strength * falloff[:, None] * offset
    return warped


def _counter_clockwise(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (points[triangles[:, k]] for k in range(3))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    flipped = cross < 0
    triangles = triangles.copy()
    triangles[flipped] = triangles[flipped][:, [0, 2, 1]]
    return triangles


def _cut_mouth_slit(points: np.ndarray, triangles: np.ndarray, corner_u: float):
    """Duplicate the mouth-row vertices between the corners; lower-lip triangles use the copies."""
    on_mouth_row = np.abs(points[:, 1] - MOUTH_LINE_V) < 1e-9
    on_slit = np.flatnonzero(on_mouth_row & (np.abs(points[:, 0]) < corner_u - 1e-6))
    duplicate_of = np.full(len(points), -1)
    duplicate_of[on_slit] = len(points) + np.arange(len(on_slit))
    centroid_v = points[triangles, 1].mean(axis=1)
    below = centroid_v < MOUTH_LINE_V
    triangles = triangles.copy()
    for k in range(3):
        remap = below & (duplicate_of[triangles[:, k]] >= 0)
        triangles[remap, k] = duplicate_of[triangles[remap, k]]
    lip_side = np.zeros(len(points) + len(on_slit), dtype=np.int8)
    lip_side[on_slit] = 1
    lip_side[len(points):] = -1
    return np.concatenate([points, points[on_slit]]), triangles, lip_side


@functools.lru_cache(maxsize=1)
def face_chart() -> FaceChart:
    """The SynthFaces topology (deterministic; built once per process, arrays read-only)."""
    spacing = LATTICE_SPACING
    points = np.concatenate([_interior_lattice(spacing), _outline_points(spacing)])
    # Row-major order (top to bottom, then left to right) keeps mesh neighbours close in memory.
    points = points[np.lexsort((points[:, 0], -np.round(points[:, 1], 6)))]
    triangles = Delaunay(points).simplices.astype(np.int64)
    triangles = _counter_clockwise(points, triangles)
    corner_u = _MOUTH_CORNER_STEPS * spacing
    points, triangles, lip_side = _cut_mouth_slit(points, triangles, corner_u)
    uv = _contract(points)
    on_mouth_row = np.abs(points[:, 1] - MOUTH_LINE_V) < 1e-9
    corners = np.array([np.flatnonzero(on_mouth_row & (np.abs(points[:, 0] - side * corner_u) < 1e-6))[0]
                        for side in (1.0, -1.0)], dtype=np.int64)
    # The contraction centred on the mouth keeps the mouth row (to within 0.05 mm) but draws the
    # corners inward, so their chart u is read back from the warped lattice.
    mouth_corner_u = float(uv[corners[0], 0])
    for array in (uv, lip_side, triangles, corners):
        array.setflags(write=False)
    return FaceChart(uv, lip_side, triangles, corners, mouth_corner_u, MOUTH_LINE_V)
