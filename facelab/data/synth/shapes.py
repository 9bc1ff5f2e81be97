"""Smooth analytic building blocks for the synthetic face: bumps, ramps and grooves.

All functions are elementwise and broadcast over numpy arrays; lengths are millimetres in the
face chart (see :mod:`facelab.data.synth.chart`).
"""

from __future__ import annotations

import numpy as np


def smoothstep(edge0: float, edge1, x):
    """Cubic Hermite ramp: 0 at ``edge0``, 1 at ``edge1`` (either order), C1, clamped outside."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def smoothstep_and_slope(edge0: float, edge1: float, x):
    """:func:`smoothstep` and its derivative with respect to ``x``."""
    scale = 1.0 / (edge1 - edge0)
    t = np.clip((x - edge0) * scale, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t), 6.0 * t * (1.0 - t) * scale


def smootherstep(edge0: float, edge1, x):
    """Quintic ramp like :func:`smoothstep` but C2, so shading across it shows no crease."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * t * (t * (6.0 * t - 15.0) + 10.0)


def gaussian(u, v, cu, cv, su, sv):
    """Axis-aligned Gaussian bump of height 1 centred at (cu, cv) with widths (su, sv)."""
    return np.exp(-0.5 * (((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))


def mirrored_gaussian(u, v, cu, cv, su, sv):
    """A Gaussian at (cu, cv) plus its mirror image at (-cu, cv): a symmetric pair of features."""
    return gaussian(u, v, cu, cv, su, sv) + gaussian(u, v, -cu, cv, su, sv)


def dome(u, v, cu, cv, ru, rv):
    """Compact bump (1 - d^2)^2 inside the ellipse of radii (ru, rv), 0 outside; C1 at its rim."""
    d2 = ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2
    return np.clip(1.0 - d2, 0.0, None) ** 2


def mirrored_dome(u, v, cu, cv, ru, rv):
    """A :func:`dome` at (cu, cv) and its mirror image at (-cu, cv)."""
    return dome(u, v, cu, cv, ru, rv) + dome(u, v, -cu, cv, ru, rv)


def groove(distance, width):
    """Gaussian profile of a line feature: 1 on the line, falling off with ``distance``/``width``."""
    return np.exp(-0.5 * (distance / width) ** 2)


def window(x, low: float, high: float, soft: float):
    """1 inside [low, high], easing to 0 over ``soft`` millimetres outside (C1)."""
    return smoothstep(low - soft, low, x) * smoothstep(high + soft, high, x)
