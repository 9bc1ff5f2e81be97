"""ICT-FaceKit: paired faces sampled from the ICT Face Model Light.

The source is the compact model ``.npz`` (see :mod:`facelab.data.morphable_model`), a folder
holding it as ``ict_face_model.npz``, or ICT-FaceKit's ``FaceXModel/`` folder, which is imported
into the cache directory once.

Sampling (deterministic given ``seed``; identity i is the same whatever ``identities`` is):

- identity weights ``w ~ N(0, 1)`` per identity, from ``np.random.default_rng(seed)``;
- per identity: the ``neutral``; each of the 53 expression shapes alone at one intensity drawn
  per (identity, shape) from weak 0.35 / medium 0.7 / strong 1.0, labelled
  ``"<shape>_<weak|medium|strong>"`` (e.g. ``"jawOpen_strong"``); and 8 combinations
  ``"combo_<k>"`` of 2-3 distinct shapes with weights in [0.35, 1.0], the same shapes and
  weights for combination k in every identity.

That is 1 + 53 + 8 = 62 meshes per identity: 6,200 meshes of 9,409 vertices (~700 MB of float32)
for the default 100 identities, generated once into the cache directory and memory-mapped.

Expressions in this model add linearly to any identity, so a linear method can undo them
exactly: read results on this dataset beside a linear baseline.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_path, preallocated_memmap
from facelab.data.dataset import NEUTRAL, FaceDataset, MeshRecord
from facelab.data.morphable_model import ICT_NEUTRAL_FILE, REQUIRED_KEYS, MorphableModel, import_ict
from facelab.errors import DatasetError
from facelab.paths import cache_dir

NAME = "ict-facekit"
DESCRIPTION = (
    "ict-facekit: a morphable-model .npz (keys neutral, faces, identity_modes, expression_modes, "
    "expression_names), a folder holding ict_face_model.npz, or ICT-FaceKit's FaceXModel folder"
)

MODEL_FILE = "ict_face_model.npz"
LEVELS = {"weak": 0.35, "medium": 0.7, "strong": 1.0}
COMBINATIONS = 8
COMBINATION_SIZES = (2, 3)
COMBINATION_WEIGHTS = (0.35, 1.0)
SAMPLING_VERSION = 1  # part of the cache key: bump it when the sampling below changes

# Separate random streams, so that adding identities never changes the ones drawn before.
_LEVEL_STREAM, _COMBINATION_STREAM = 1, 2


def _is_model_npz(path: Path) -> bool:
    """True for an .npz holding the model keys (only the archive's index is read)."""
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as archive:
            return all(key in archive.files for key in REQUIRED_KEYS)
    except Exception:  # anything unreadable is simply not this layout
        return False


def detect(path: Path) -> bool:
    """A model ``.npz``, a folder holding ``ict_face_model.npz``, or a ``FaceXModel`` folder."""
    path = Path(path)
    if path.is_file():
        return _is_model_npz(path)
    return path.is_dir() and ((path / ICT_NEUTRAL_FILE).is_file() or _is_model_npz(path / MODEL_FILE))


def _folder_fingerprint(folder: Path) -> str:
    """Names, sizes and modification times of a FaceXModel folder's OBJ files."""
    digest = hashlib.sha256()
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        if entry.name.lower().endswith(".obj") and entry.is_file():
            stat = entry.stat()
            digest.update(f"{entry.name}|{stat.st_size}|{stat.st_mtime_ns}|".encode())
    return digest.hexdigest()[:16]


def model_path(path: Path, progress: bool = True) -> Path:
    """The model ``.npz`` for ``path``; a FaceXModel folder is imported into the cache first."""
    path = Path(path)
    if path.is_file():
        return path
    if _is_model_npz(path / MODEL_FILE):
        return path / MODEL_FILE
    imported = cache_dir("models") / f"ict-facexmodel-{_folder_fingerprint(path)}.npz"
    if not imported.is_file():
        import_ict(path, imported, progress=progress)
    return imported


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _combinations(n_shapes: int, seed: int) -> np.ndarray:
    """(COMBINATIONS, n_shapes) weights: combination k mixes 2-3 distinct shapes."""
    rng = np.random.default_rng([seed, _COMBINATION_STREAM])
    weights = np.zeros((COMBINATIONS, n_shapes), dtype=np.float32)
    for row in weights:
        size = min(int(rng.integers(COMBINATION_SIZES[0], COMBINATION_SIZES[1] + 1)), n_shapes)
        row[rng.choice(n_shapes, size=size, replace=False)] = rng.uniform(*COMBINATION_WEIGHTS, size=size)
    return weights


def sample_weights(model: MorphableModel, identities: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[MeshRecord]]:
    """The weights of every mesh and its record, in dataset order (see the module docstring).

    Returns:
        identity weights (identities, k); expression weights (per_identity, identities, e) where
        per_identity = 1 + e + COMBINATIONS (neutral, single shapes, combinations); records.
    """
    names = model.expression_names
    e = len(names)
    identity_weights = model.sample_identities(identities, seed)
    level_names = list(LEVELS)
    levels = np.random.default_rng([seed, _LEVEL_STREAM]).integers(0, len(LEVELS), size=(identities, e))
    level_values = np.array(list(LEVELS.values()), dtype=np.float32)[levels]  # (identities, e)
    combinations = _combinations(e, seed)

    per_identity = 1 + e + COMBINATIONS
    expression_weights = np.zeros((per_identity, identities, e), dtype=np.float32)
    expression_weights[1 + np.arange(e), :, np.arange(e)] = level_values.T  # shape j alone at its level
    expression_weights[1 + e:] = combinations[:, None, :]

    width = max(3, len(str(identities - 1)))  # ict_000...: a label never changes with the count
    records = []
    for i in range(identities):
        subject = f"ict_{i:0{width}d}"
        records.append(MeshRecord(subject, NEUTRAL))
        records += [MeshRecord(subject, f"{name}_{level_names[levels[i, j]]}") for j, name in enumerate(names)]
        records += [MeshRecord(subject, f"combo_{k}") for k in range(COMBINATIONS)]
    return identity_weights, expression_weights, records


def _generate(model: MorphableModel, identity_weights: np.ndarray, expression_weights: np.ndarray, target: Path) -> None:
    """Write every mesh, identity by identity, into a memory-mapped ``.npy`` (atomically)."""
    per_identity, identities, _ = expression_weights.shape
    expression_flat = model.expression_modes.reshape(model.n_expression_modes, -1)
    with atomic_path(target) as tmp:
        out = preallocated_memmap(tmp, (identities * per_identity, model.n_vertices, 3))
        neutral_faces = model.shape(identity_weights).reshape(identities, -1)  # (identities, n*3)
        for i in range(identities):
            rows = neutral_faces[i][None] + expression_weights[:, i] @ expression_flat
            out[i * per_identity:(i + 1) * per_identity] = rows.reshape(per_identity, model.n_vertices, 3)
        out.flush()
        del out


def load(path: Path, progress: bool = True, identities: int = 100, seed: int = 0,
         narrow_face: bool = False) -> FaceDataset:
    """Sample a paired dataset from the ICT-FaceKit model (see the module docstring).

    Args:
        identities: how many random identities (subjects ``ict_000``...).
        seed: the random seed of identities, intensities and combinations.
        narrow_face: keep only the narrow face area (6,706 vertices) instead of the full face
            area (9,409).

    Returns:
        identities x 62 meshes in mm, memory-mapped from the cache directory.
    """
    if isinstance(identities, bool) or not isinstance(identities, (int, np.integer)) or identities < 1:
        raise DatasetError(f"identities must be a whole number of at least 1, got {identities!r}.")
    source = model_path(Path(path), progress=progress)
    model = MorphableModel.load(source)
    if narrow_face:
        model = model.restrict(model.narrow_face_vertices)
    identity_weights, expression_weights, records = sample_weights(model, int(identities), int(seed))

    key = hashlib.sha256(
        f"{SAMPLING_VERSION}|{_file_hash(source)}|{identities}|{seed}|{bool(narrow_face)}".encode()
    ).hexdigest()[:24]
    array_path = cache_dir("datasets") / f"ict-{key}.npy"
    shape = (len(records), model.n_vertices, 3)
    vertices = None
    if array_path.exists():
        try:
            vertices = np.load(array_path, mmap_mode="r")
            if vertices.shape != shape or vertices.dtype != np.float32:
                vertices = None
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            vertices = None
    if vertices is None:
        _generate(model, identity_weights, expression_weights, array_path)
        vertices = np.load(array_path, mmap_mode="r")

    area = "narrow face" if narrow_face else "face"
    return FaceDataset(
        name=f"ICT-FaceKit ({identities} identities, seed {seed}, {area} area)",
        layout=NAME, vertices=vertices, triangles=model.faces, records=records, root=Path(path),
        split_per_subject=True,  # identity i keeps its side of the split whatever the count
    )
