"""Where facelab keeps generated data.

Generated data (SynthFaces arrays, vertex caches of real datasets, Laplacian caches) lives in
the user's cache directory, never in the repository. ``FACELAB_CACHE_DIR`` overrides it (the
test suite points it at a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir(*parts: str) -> Path:
    """The cache directory (created on demand), or a sub-folder of it."""
    root = os.environ.get("FACELAB_CACHE_DIR") or platformdirs.user_cache_dir("facelab")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
