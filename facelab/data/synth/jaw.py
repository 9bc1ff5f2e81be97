"""Rigid motions of the lower face: the jaw joint of an identity and rotations about it.

Shared by the identity (a resting face may hold the jaw slightly open) and the expressions.
"""

from __future__ import annotations

import numpy as np

from facelab.data.synth.anatomy import HeadShape, embed

# Chart point (mm) on the surface in front of the ear, level with the jaw joint, and how far
# the joint lies beneath that skin (mm).
HINGE_CHART_POINT = (90.0, -4.0)
HINGE_DEPTH = 10.0
X_AXIS, Y_AXIS = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
# Weights below this are treated as 0 (the motion there is under 1e-7 mm).
NEGLIGIBLE_WEIGHT = 1e-9


def jaw_joint(head: HeadShape, count: int) -> np.ndarray:
    """(count, 3) position of the right jaw joint: beneath the skin in front of the ear."""
    hinge_uv = np.broadcast_to(np.array(HINGE_CHART_POINT), (count, 1, 2))
    skin = embed(hinge_uv, np.zeros((count, 1)), head)[:, 0, :]
    skin[:, 0] -= HINGE_DEPTH  # the skin there faces the side: beneath it is toward the midline
    return skin


def rotate(points: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate (count, n, 3) points about a unit ``axis`` through the origin by ``angle`` (count,)
    radians (Rodrigues' formula)."""
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    cross = np.cross(axis, points)
    dot = np.sum(points * axis, axis=-1, keepdims=True)
    return points * cos + cross * sin + axis * dot * (1.0 - cos)


def rotate_weighted(vertices: np.ndarray, origin: np.ndarray, axis: np.ndarray, angle: np.ndarray,
                    glide: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``vertices`` (count, n, 3) with each vertex moved ``weight`` (n,) of the way to its place
    after rotating by ``angle`` (count,) about ``axis`` through ``origin`` (count, 3) and then
    translating by ``glide`` (count, 3). A new array; only vertices with weight are touched."""
    moved = vertices.copy()
    turning = np.flatnonzero(weight > NEGLIGIBLE_WEIGHT)
    # np.take and plain assignment: several times faster than fancy-indexed "+=".
    before = np.take(vertices, turning, axis=1)
    points = before - origin[:, None, :]
    shift = rotate(points, axis, angle) - points + glide[:, None, :]
    moved[:, turning] = before + weight[turning, None] * shift
    return moved
