"""Shared fixtures. Every test run uses its own cache directory, never the user's."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    if "FACELAB_CACHE_DIR" not in os.environ:
        os.environ["FACELAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="facelab-test-cache-")


@pytest.fixture
def grid_mesh():
    """A small registered-style mesh: a 6 x 5 grid of vertices (30) in mm, 40 triangles."""
    from facelab.mesh import FaceMesh

    xs, ys = np.meshgrid(np.linspace(-30, 30, 6), np.linspace(-20, 20, 5))
    vertices = np.stack([xs.ravel(), ys.ravel(), 5 * np.sin(xs.ravel() / 10)], axis=1)
    triangles = []
    for row in range(4):
        for col in range(5):
            a = row * 6 + col
            triangles += [[a, a + 1, a + 7], [a, a + 7, a + 6]]
    return FaceMesh(vertices, np.array(triangles), name="grid")
