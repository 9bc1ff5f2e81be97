"""SynthFaces as a FaceDataset, cached in the user cache directory.

Generation is deterministic from (identities, seed) and the generator's code, so the cache key
is those plus a hash of the generator's source files: editing the generator invalidates it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_path, atomic_write_text
from facelab.data.dataset import FaceDataset, MeshRecord
from facelab.errors import DatasetError
from facelab.paths import cache_dir

DEFAULT_IDENTITIES = 100
DEFAULT_SEED = 0


def _split_pool(subjects: list[str]) -> tuple[str, ...]:
    """The default set's subjects: identity k is the same however many are generated, so the
    split is drawn from the first DEFAULT_IDENTITIES and extra identities only ever train."""
    return tuple(sorted(set(subjects)))[:DEFAULT_IDENTITIES]


def _generator_fingerprint() -> str:
    import facelab.data.synth as synth

    digest = hashlib.sha256()
    for source in sorted(Path(synth.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:12]


def synthfaces_name(identities: int, seed: int) -> str:
    return f"SynthFaces ({identities} identities, seed {seed})"


def load_synthfaces(identities: int = DEFAULT_IDENTITIES, seed: int = DEFAULT_SEED, progress: bool = True,
                    use_cache: bool = True) -> FaceDataset:
    """The built-in dataset: ``identities`` x (neutral + 12 expressions x 3 intensities).

    The arrays are generated once and kept in the cache directory; later calls memory-map them.
    """
    from facelab.data.synth import generate_synthfaces

    if identities < 1:
        raise DatasetError(f"SynthFaces needs at least 1 identity, got {identities}.")
    name = synthfaces_name(identities, seed)
    stem = cache_dir("synthfaces") / f"{_generator_fingerprint()}-{identities}-{seed}"
    array_path, meta_path = stem.with_suffix(".npy"), stem.with_suffix(".json")
    if use_cache and array_path.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            records = [MeshRecord(s, e) for s, e in zip(meta["subjects"], meta["expressions"])]
            return FaceDataset(name, "synth", np.load(array_path, mmap_mode="r"),
                               np.asarray(meta["triangles"], dtype=np.int64), records,
                               split_pool=_split_pool(meta["subjects"]))
        except Exception:  # a damaged cache entry is regenerated, never trusted
            array_path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
    data = generate_synthfaces(identities=identities, seed=seed)
    records = [MeshRecord(s, e) for s, e in zip(data.subjects, data.expressions)]
    dataset = FaceDataset(name, "synth", data.vertices, data.triangles, records, split_pool=_split_pool(data.subjects))
    if use_cache:
        with atomic_path(array_path) as tmp:
            np.save(tmp, data.vertices)
        atomic_write_text(meta_path, json.dumps({
            "subjects": data.subjects, "expressions": data.expressions,
            "triangles": np.asarray(data.triangles).tolist(), "seed": seed,
        }))
    return dataset
