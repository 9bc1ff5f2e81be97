"""Shared fixtures. Every test run uses its own cache directory, never the user's."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


_OWN_CACHE: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    if "FACELAB_CACHE_DIR" not in os.environ:
        _OWN_CACHE.append(tempfile.mkdtemp(prefix="facelab-test-cache-"))
        os.environ["FACELAB_CACHE_DIR"] = _OWN_CACHE[0]


def pytest_unconfigure(config: pytest.Config) -> None:
    # The suite's SynthFaces caches come to about 400 MB: a run removes the one it made.
    for path in _OWN_CACHE:
        shutil.rmtree(path, ignore_errors=True)


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


def make_tiny_dataset(subjects: int = 6, expressions: int = 4, seed: int = 0, prefix: str = "p"):
    """A small paired dataset on an icosphere (162 vertices, radius ~50 mm).

    Identities scale and bulge the sphere; expressions are rotations of a cap (non-linear) whose
    size depends on the identity, so neutralising is learnable but not trivial.
    """
    import trimesh

    from facelab.data import FaceDataset, MeshRecord

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=50.0)
    base = np.asarray(sphere.vertices, dtype=np.float64)
    rng = np.random.default_rng(seed)
    records, vertices = [], []
    for s in range(subjects):
        scale = 1 + 0.15 * rng.normal(size=3)
        bump = rng.normal(size=3)
        identity = base * scale + 4.0 * np.exp(-np.sum((base / 50 - bump / np.linalg.norm(bump)) ** 2, axis=1))[:, None] * base / 50
        records.append(MeshRecord(f"{prefix}{s:02d}", "neutral"))
        vertices.append(identity)
        for e in range(expressions):
            angle = 0.25 * (e + 1) * scale[1]
            rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
            weight = 1 / (1 + np.exp(-(identity[:, 1] + 10 * (e - 1.5)) / 5))
            moved = identity + weight[:, None] * (identity @ rotation.T - identity)
            records.append(MeshRecord(f"{prefix}{s:02d}", f"expr_{e}"))
            vertices.append(moved)
    return FaceDataset(f"tiny ({subjects} subjects)", "generic", np.asarray(vertices, dtype=np.float32),
                       np.asarray(sphere.faces), records)


@pytest.fixture
def tiny_dataset():
    return make_tiny_dataset()
