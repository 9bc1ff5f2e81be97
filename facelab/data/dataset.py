"""A paired face dataset: meshes on one template, their labels, pairs, splits and statistics.

Every source (SynthFaces, CoMA, FaceWarehouse, FaceScape, ICT-FaceKit, plain folders) ends up
as a :class:`FaceDataset`: one vertex array ``(N, n, 3)`` in millimetres (in memory or
memory-mapped from the cache), one triangle list, and one :class:`MeshRecord` per mesh.

Pairing: an expressive mesh is paired with the neutral of the same subject and the same
``group``. The group is empty for static datasets (one neutral per subject); CoMA sets it to
the sequence name, since the paper takes the first frame of each sequence as its neutral.
"""

from __future__ import annotations

import hashlib

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelab.errors import DatasetError
from facelab.mesh.face_mesh import FaceMesh
from facelab.mesh.validation import triangles_hash

NEUTRAL = "neutral"
#: The share of subjects in the training part of a cross-subject split (the rest are unseen test subjects).
DEFAULT_TRAIN_FRACTION = 0.7
#: The seed of that split.
DEFAULT_SPLIT_SEED = 0


@dataclass(frozen=True)
class MeshRecord:
    """Labels of one mesh of a dataset.

    Attributes:
        subject: the identity label.
        expression: the expression label; ``"neutral"`` marks a neutral face.
        path: the source file, or None for generated meshes.
        group: pairing group within a subject (CoMA: the sequence), "" otherwise.
    """

    subject: str
    expression: str
    path: Path | None = None
    group: str = ""

    @property
    def is_neutral(self) -> bool:
        return self.expression == NEUTRAL


@dataclass(frozen=True)
class Pair:
    """An expressive mesh and its ground-truth neutral, by index into the dataset."""

    expressive: int
    neutral: int
    subject: str
    expression: str


@dataclass(frozen=True)
class DatasetSplit:
    """A cross-subject split: no subject is in both parts."""

    train_subjects: tuple[str, ...]
    test_subjects: tuple[str, ...]
    seed: int
    train_fraction: float


@dataclass(frozen=True)
class Normalisation:
    """Per-vertex, per-coordinate statistics of the training split, in millimetres.

    Networks see ``(vertices - mean) / std``; predictions come back as ``x * std + mean``.
    """

    mean: np.ndarray  # (n, 3) float32
    std: np.ndarray   # (n, 3) float32, floored (see FaceDataset.normalisation)

    MIN_STD_MM = 1e-3
    #: Coordinates that barely vary (the x of a symmetric face's midline is always 0) would turn
    #: a 0.1 mm error into hundreds of normalised units and dominate the L1 losses, so each std
    #: is at least this fraction of the median std.
    MIN_STD_FRACTION = 0.1

    def normalise(self, vertices: np.ndarray) -> np.ndarray:
        return (vertices - self.mean) / self.std

    def denormalise(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean


@dataclass(eq=False)
class FaceDataset:
    """Meshes of one registered topology with subject and expression labels.

    Attributes:
        name: a short description ("SynthFaces (100 identities, seed 0)", "CoMA at /data/coma").
        layout: the layout it was read as ("synth", "coma", "facewarehouse", "facescape",
            "ict-facekit", "generic").
        vertices: (N, n, 3) float32 millimetres; may be a read-only memory map.
        triangles: (m, 3) int64, shared by all meshes.
        records: N labels, in the same order as ``vertices``.
        root: the folder or file it was read from (None for generated data).
        warnings: what was skipped while reading (broken files, unpaired meshes).
        split_pool: the subjects the 70/30 split is drawn from; others always train. None: all.
            SynthFaces sets it to its first 100 identities, so a model trained on a larger
            SynthFaces (extra identities are training data only) is still tested on the default
            set's test subjects, never seen in training.
        split_per_subject: draw each subject's side of the split from its own name and the seed
            (a sampled morphable model sets it): a subject then stays on its side however many
            identities are sampled, so a model trained on fewer is never tested on its own
            training subjects when more are sampled.
    """

    name: str
    layout: str
    vertices: np.ndarray
    triangles: np.ndarray
    records: list[MeshRecord]
    root: Path | None = None
    warnings: list[str] = field(default_factory=list)
    split_pool: tuple[str, ...] | None = None
    split_per_subject: bool = False

    def __post_init__(self) -> None:
        if self.vertices.ndim != 3 or self.vertices.shape[2] != 3:
            raise ValueError(f"vertices must be shaped (N, n, 3), got {self.vertices.shape}")
        if len(self.records) != len(self.vertices):
            raise ValueError(f"{len(self.records)} records for {len(self.vertices)} meshes")
        self.triangles = np.asarray(self.triangles, dtype=np.int64)
        self._pairs: list[Pair] | None = None
        self._topology_hash: tuple[np.ndarray, str] | None = None

    # ---- what it holds -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[1])

    @property
    def topology_hash(self) -> str:
        """``triangles_hash`` of the triangles, kept while ``triangles`` is the same array: the app
        checks it on every sample it shows, and hashing sorts every triangle."""
        if self._topology_hash is None or self._topology_hash[0] is not self.triangles:
            self._topology_hash = (self.triangles, triangles_hash(self.triangles))
        return self._topology_hash[1]

    @property
    def subjects(self) -> list[str]:
        """Subject labels, sorted."""
        return sorted({record.subject for record in self.records})

    @property
    def expressions(self) -> list[str]:
        """Expression labels other than neutral, sorted."""
        return sorted({record.expression for record in self.records if not record.is_neutral})

    def mesh(self, index: int) -> FaceMesh:
        record = self.records[index]
        label = f"{record.subject}/{record.group + '/' if record.group else ''}{record.expression}"
        return FaceMesh(np.array(self.vertices[index]), self.triangles, name=label)

    def template(self) -> FaceMesh:
        """The topology with a mean shape: the mean of all neutral meshes (all meshes if none)."""
        neutral = [i for i, record in enumerate(self.records) if record.is_neutral] or list(range(len(self)))
        mean = np.mean(np.asarray(self.vertices[neutral], dtype=np.float64), axis=0)
        return FaceMesh(mean.astype(np.float32), self.triangles, name=f"{self.name} template")

    def indices_of(self, subjects: set[str] | list[str] | tuple[str, ...]) -> np.ndarray:
        wanted = set(subjects)
        return np.array([i for i, record in enumerate(self.records) if record.subject in wanted], dtype=np.int64)

    # ---- pairs ---------------------------------------------------------------------------
    @property
    def pairs(self) -> list[Pair]:
        """(expressive, neutral) pairs; expressive meshes without a neutral are left out."""
        if self._pairs is None:
            neutral_of: dict[tuple[str, str], int] = {}
            for index, record in enumerate(self.records):
                if record.is_neutral:
                    neutral_of.setdefault((record.subject, record.group), index)
            pairs = []
            for index, record in enumerate(self.records):
                if record.is_neutral:
                    continue
                neutral = neutral_of.get((record.subject, record.group))
                if neutral is None:
                    neutral = neutral_of.get((record.subject, ""))
                if neutral is not None:
                    pairs.append(Pair(index, neutral, record.subject, record.expression))
            self._pairs = pairs
        return self._pairs

    def pairs_of(self, subjects: set[str] | list[str] | tuple[str, ...]) -> list[Pair]:
        wanted = set(subjects)
        return [pair for pair in self.pairs if pair.subject in wanted]

    # ---- split and statistics ------------------------------------------------------------
    def split_of(self, train_config: dict | None) -> DatasetSplit:
        """The split a model was trained with: its ``train_config``'s ``train_fraction`` and
        ``split_seed`` (the defaults where it names none)."""
        config = train_config or {}
        return self.split(config.get("train_fraction", DEFAULT_TRAIN_FRACTION),
                          config.get("split_seed", DEFAULT_SPLIT_SEED))

    def split(self, train_fraction: float = DEFAULT_TRAIN_FRACTION, seed: int = DEFAULT_SPLIT_SEED) -> DatasetSplit:
        """A seeded cross-subject split of the sorted subjects (70/30 by default).

        With two or more subjects both parts get at least one subject. Subjects outside
        ``split_pool`` (when set) are added to the training part.
        """
        if not 0.0 < train_fraction < 1.0:
            raise DatasetError(f"the training fraction must lie strictly between 0 and 1, got {train_fraction}.")
        all_subjects = self.subjects
        pool = set(self.split_pool) if self.split_pool is not None else set(all_subjects)
        subjects = [subject for subject in all_subjects if subject in pool]
        if len(subjects) < 2:
            raise DatasetError(
                f"{self.name} has {len(subjects)} subject(s): a cross-subject split needs at least 2."
            )
        test = _per_subject_test(subjects, train_fraction, seed) if self.split_per_subject else ()
        if not test or len(test) == len(subjects):  # the permutation; also when a side came out empty
            order = np.random.default_rng(seed).permutation(len(subjects))
            n_train = int(round(train_fraction * len(subjects)))
            n_train = min(max(n_train, 1), len(subjects) - 1)
            test = tuple(sorted(subjects[i] for i in order[n_train:]))
        train = tuple(sorted(set(all_subjects) - set(test)))
        return DatasetSplit(train, test, seed, train_fraction)

    def normalisation(self, split: DatasetSplit, transform=None) -> Normalisation:
        """Per-vertex mean and std over every mesh of the training subjects only.

        ``transform`` (optional) maps a block of meshes (B, n, 3) float64 before it is counted:
        a model that aligns its inputs takes its statistics in the template's frame. Each std is
        floored at ``MIN_STD_FRACTION`` of the median std (and ``MIN_STD_MM``).
        """
        indices = self.indices_of(split.train_subjects)
        if indices.size == 0:
            raise DatasetError(f"{self.name}: the training split has no meshes to compute statistics from.")
        total = np.zeros((self.n_vertices, 3), dtype=np.float64)
        total_sq = np.zeros_like(total)
        for start in range(0, indices.size, 256):  # chunks keep a memory map from being read whole
            chunk = np.asarray(self.vertices[indices[start:start + 256]], dtype=np.float64)
            if transform is not None:
                chunk = np.asarray(transform(chunk), dtype=np.float64)
            total += chunk.sum(axis=0)
            total_sq += np.square(chunk).sum(axis=0)
        mean = total / indices.size
        variance = np.maximum(total_sq / indices.size - np.square(mean), 0.0)
        std = np.sqrt(variance)
        std = np.maximum(std, max(Normalisation.MIN_STD_FRACTION * float(np.median(std)), Normalisation.MIN_STD_MM))
        return Normalisation(mean.astype(np.float32), std.astype(np.float32))

    def summary(self) -> dict:
        """What ``facelab inspect`` prints about a dataset."""
        info = {
            "name": self.name,
            "layout": self.layout,
            "vertices": self.n_vertices,
            "triangles": int(len(self.triangles)),
            "meshes": len(self),
            "subjects": len(self.subjects),
            "expressions": len(self.expressions),
            "neutral_meshes": sum(record.is_neutral for record in self.records),
            "pairs": len(self.pairs),
        }
        if len(self.subjects) >= 2:
            split = self.split()
            info["split"] = {
                "train_subjects": len(split.train_subjects),
                "test_subjects": len(split.test_subjects),
                "train_pairs": len(self.pairs_of(split.train_subjects)),
                "test_pairs": len(self.pairs_of(split.test_subjects)),
            }
        if self.warnings:
            info["warnings"] = list(self.warnings)  # each file skipped on reading, and why
        return info


def _per_subject_test(subjects: list[str], train_fraction: float, seed: int) -> tuple[str, ...]:
    """The subjects whose own uniform draw, seeded by (seed, name), falls past ``train_fraction``."""
    def draw(subject: str) -> float:
        digest = hashlib.sha256(f"{seed}|{subject}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    return tuple(sorted(subject for subject in subjects if draw(subject) >= train_fraction))
