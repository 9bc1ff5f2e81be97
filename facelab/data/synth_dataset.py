"""SynthFaces as a FaceDataset, cached in the user cache directory.

Generation is deterministic from (identities, seed) and the generator's code, so the cache key
is those plus a hash of the generator's source files: editing the generator invalidates it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_path, atomic_write_text, preallocated_memmap
from facelab.data.dataset import FaceDataset, MeshRecord
from facelab.errors import DatasetError
from facelab.paths import cache_dir

DEFAULT_IDENTITIES = 100
DEFAULT_SEED = 0
GENERATION_BLOCK = 100  # identities generated at once into the cache (about 190 MB of meshes)


def _split_pool(subjects: list[str]) -> tuple[str, ...]:
    """The default set's subjects: identity k is the same however many are generated, so the
    split is drawn from the first DEFAULT_IDENTITIES and extra identities only ever train."""
    return tuple(sorted(set(subjects)))[:DEFAULT_IDENTITIES]


def _generator_fingerprint() -> str:
    # The generator's sources are read, not imported: a cached dataset opens without the generator
    # (and the scipy it brings).
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).with_name("synth").glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:12]


def synthfaces_cache_path(identities: int = DEFAULT_IDENTITIES, seed: int = DEFAULT_SEED) -> Path:
    """Where :func:`load_synthfaces` keeps the array of ``identities`` and ``seed`` (it may not
    exist yet); its ``.json`` sibling holds the labels. The name carries a hash of the generator's
    code, so a changed generator never reads an old cache."""
    return cache_dir("synthfaces") / f"{_generator_fingerprint()}-{identities}-{seed}.npy"


def synthfaces_name(identities: int, seed: int) -> str:
    return f"SynthFaces ({identities} identities, seed {seed})"


def load_synthfaces(identities: int = DEFAULT_IDENTITIES, seed: int = DEFAULT_SEED, progress: bool = True,
                    use_cache: bool = True) -> FaceDataset:
    """The built-in dataset: ``identities`` x (neutral + 12 expressions x 3 intensities).

    The arrays are generated once and kept in the cache directory; later calls memory-map them.
    """
    if identities < 1:
        raise DatasetError(f"SynthFaces needs at least 1 identity, got {identities}.")
    name = synthfaces_name(identities, seed)
    array_path = synthfaces_cache_path(identities, seed)
    meta_path = array_path.with_suffix(".json")
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
    if not use_cache:
        from facelab.data.synth import generate_synthfaces

        data = generate_synthfaces(identities=identities, seed=seed)
        records = [MeshRecord(s, e) for s, e in zip(data.subjects, data.expressions)]
        return FaceDataset(name, "synth", data.vertices, data.triangles, records,
                           split_pool=_split_pool(data.subjects))
    subjects, expressions, triangles = _generate_into(array_path, identities, seed, progress)
    atomic_write_text(meta_path, json.dumps({
        "subjects": subjects, "expressions": expressions, "triangles": triangles.tolist(), "seed": seed,
    }))
    records = [MeshRecord(s, e) for s, e in zip(subjects, expressions)]
    return FaceDataset(name, "synth", np.load(array_path, mmap_mode="r"), triangles, records,
                       split_pool=_split_pool(subjects))


def _generate_into(array_path: Path, identities: int, seed: int, progress: bool):
    """Generate SynthFaces block by block straight into the cache's array (written atomically):
    memory stays at one block's, whatever the number of identities (2,700 would be 5 GB at once).
    Returns the subjects, expressions and triangles of the records, in the array's order."""
    from tqdm.auto import tqdm

    from facelab.data.synth import generate_synthfaces

    subjects: list[str] = []
    expressions: list[str] = []
    triangles = None
    with atomic_path(array_path) as tmp, tqdm(total=identities, desc="Generating SynthFaces", unit="identity",
                                              disable=not progress or identities <= GENERATION_BLOCK,
                                              leave=False) as bar:
        array = None
        for first in range(0, identities, GENERATION_BLOCK):
            count = min(GENERATION_BLOCK, identities - first)
            block = generate_synthfaces(identities=count, seed=seed, first=first)
            if array is None:
                per_subject = len(block.vertices) // count
                array = preallocated_memmap(tmp, (identities * per_subject, *block.vertices.shape[1:]))
                triangles = block.triangles
            row = len(subjects)
            array[row:row + len(block.vertices)] = block.vertices
            subjects += block.subjects
            expressions += block.expressions
            bar.update(count)
        array.flush()
        del array
    return subjects, expressions, triangles
