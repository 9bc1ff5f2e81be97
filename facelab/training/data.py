"""The training view of a dataset: split into fit / validation / test subjects, and batches.

The paper splits subjects 70/30 into training and test. To pick the best checkpoint without
looking at the test subjects, ``validation_fraction`` of the *training* subjects (at least one,
when there are three or more) are held out as validation; the recognizer's classes are the
remaining ("fit") subjects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facelab.data.dataset import DatasetSplit, FaceDataset, Normalisation, Pair


@dataclass(frozen=True)
class TrainingSplit:
    split: DatasetSplit                  # the 70/30 cross-subject split of the paper
    fit_subjects: tuple[str, ...]        # training subjects the network learns from (recognizer classes)
    validation_subjects: tuple[str, ...]

    @property
    def test_subjects(self) -> tuple[str, ...]:
        return self.split.test_subjects


def make_training_split(dataset: FaceDataset, train_fraction: float, seed: int, validation_fraction: float) -> TrainingSplit:
    split = dataset.split(train_fraction=train_fraction, seed=seed)
    train = list(split.train_subjects)
    n_val = 0
    if validation_fraction > 0 and len(train) >= 3:
        n_val = max(1, int(round(validation_fraction * len(train))))
    order = np.random.default_rng([seed, 1]).permutation(len(train))
    validation = tuple(sorted(train[i] for i in order[:n_val]))
    fit = tuple(sorted(train[i] for i in order[n_val:]))
    return TrainingSplit(split, fit, validation or fit)


class PairBatches:
    """Normalised (expressive, neutral, label) batches of a list of pairs, in a seeded order per epoch.

    The order of epoch e depends only on (seed, e), so a resumed run sees the same batches as
    an uninterrupted one without saving any random state.
    """

    def __init__(self, dataset: FaceDataset, pairs: list[Pair], normalisation: Normalisation,
                 subject_index: dict[str, int], batch_size: int, seed: int, device: torch.device) -> None:
        if not pairs:
            raise ValueError("no pairs to train on")
        self.dataset = dataset
        self.pairs = pairs
        self.batch_size = min(batch_size, len(pairs))
        self.seed = seed
        self.device = device
        self.mean = torch.from_numpy(normalisation.mean).to(device)
        self.std = torch.from_numpy(normalisation.std).to(device)
        self.expressive = np.array([p.expressive for p in pairs])
        self.neutral = np.array([p.neutral for p in pairs])
        self.labels = torch.tensor([subject_index.get(p.subject, -1) for p in pairs], dtype=torch.long)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.pairs) // self.batch_size  # the ragged tail is dropped: BatchNorm-free, but keeps steps equal

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.pairs))

    def normalise(self, vertices: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(np.ascontiguousarray(vertices, dtype=np.float32)).to(self.device) - self.mean) / self.std

    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = self.order(epoch)[step * self.batch_size:(step + 1) * self.batch_size]
        return self.rows(rows)

    def rows(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_e = self.normalise(self.dataset.vertices[self.expressive[rows]])
        x_n = self.normalise(self.dataset.vertices[self.neutral[rows]])
        return x_e, x_n, self.labels[rows].to(self.device)
