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
from torch.utils.data import DataLoader, Dataset, Sampler

from facelab.data.dataset import DatasetSplit, FaceDataset, Normalisation, Pair
from facelab.data.layouts import load_dataset
from facelab.errors import DatasetError
from facelab.mesh.alignment import Alignment, align_pairs
from facelab.mesh.similarity import SimilarityTransform
from facelab.training import distributed


@dataclass(frozen=True)
class TrainingSplit:
    split: DatasetSplit                  # the 70/30 cross-subject split of the paper
    fit_subjects: tuple[str, ...]        # training subjects the network learns from (recognizer classes)
    validation_subjects: tuple[str, ...]
    # False when too few training subjects (fewer than 3) left none to hold out: validation
    # then measures the fit subjects themselves, which says nothing about unseen faces.
    validation_held_out: bool = True

    @property
    def test_subjects(self) -> tuple[str, ...]:
        return self.split.test_subjects

    def fit_only(self) -> DatasetSplit:
        """The split with the fit subjects as its training part: what the normalisation
        statistics are computed from, so that validation subjects stay unseen."""
        return DatasetSplit(self.fit_subjects, self.test_subjects, self.split.seed, self.split.train_fraction)


def load_dataset_in_turn(config, group: distributed.ProcessGroup) -> FaceDataset:
    """``config.data``, loaded; under torchrun, rank 0 first, then one process per other machine,
    then the rest: the first load writes the memory-mapped cache, and processes writing the same
    cache files at once would corrupt them. Later loads read the cache."""
    def load() -> FaceDataset:
        return load_dataset(config.data, format=config.data_format, **config.data_options)

    if not group.is_distributed:
        return load()
    turn = 0 if group.rank == 0 else (1 if group.local_rank == 0 else 2)
    dataset = None
    for current in range(3):
        if turn == current:
            dataset = load()
        distributed.barrier(group)
    return dataset


def make_training_split(dataset: FaceDataset, train_fraction: float, seed: int, validation_fraction: float) -> TrainingSplit:
    split = dataset.split(train_fraction=train_fraction, seed=seed)
    train = list(split.train_subjects)
    n_val = 0
    if validation_fraction > 0 and len(train) >= 3:
        n_val = max(1, int(round(validation_fraction * len(train))))
    order = np.random.default_rng([seed, 1]).permutation(len(train))
    validation = tuple(sorted(train[i] for i in order[:n_val]))
    fit = tuple(sorted(train[i] for i in order[n_val:]))
    return TrainingSplit(split, fit, validation or fit, validation_held_out=bool(validation))


def epoch_order(seed: int, epoch: int, n_pairs: int) -> np.ndarray:
    """The order of the pairs in an epoch: a function of (seed, epoch) only."""
    return np.random.default_rng([seed, epoch]).permutation(n_pairs)


class PairBatches:
    """Normalised (expressive, neutral, label) batches of a list of pairs, in a seeded order per epoch.

    The order of epoch e depends only on (seed, e), so a resumed run sees the same batches as
    an uninterrupted one without saving any random state.

    Data-parallel runs (``world_size`` processes) shard each *global* batch of
    ``batch_size x world_size`` pairs: rank r takes the r-th contiguous slice of it. A step
    therefore covers the same pairs whatever the number of processes, and a run on N processes
    equals one process with an N times larger batch (the ``DistributedSampler`` idea, with
    ``set_epoch`` replaced by the epoch argument).

    Batches are read from the dataset's vertex array (a memory map for real datasets) by
    ``num_workers`` DataLoader processes when asked (0: in this process), then moved to the
    device, brought into the template's frame by ``alignment`` (each pair by the transform of
    its expressive face, see :func:`~facelab.mesh.alignment.align_pairs`) and normalised there.
    """

    def __init__(self, dataset: FaceDataset, pairs: list[Pair], normalisation: Normalisation,
                 subject_index: dict[str, int], batch_size: int, seed: int, device: torch.device,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0,
                 alignment: Alignment | None = None, template: np.ndarray | None = None) -> None:
        if not pairs:
            raise ValueError("no pairs to train on")
        if len(pairs) < world_size:
            raise DatasetError(f"{len(pairs)} training pairs cannot feed {world_size} processes: use fewer processes.")
        self.dataset = dataset
        self.pairs = pairs
        self.batch_size = min(batch_size, len(pairs) // world_size)  # per process
        self.world_size, self.rank = world_size, rank
        self.global_batch_size = self.batch_size * world_size
        self.seed = seed
        self.device = device
        self.mean = torch.from_numpy(normalisation.mean).to(device)
        self.std = torch.from_numpy(normalisation.std).to(device)
        self.alignment = alignment or Alignment("none")
        if self.alignment.enabled and template is None:
            raise ValueError("aligned batches need the template")
        self.template = None if template is None else torch.as_tensor(np.asarray(template, np.float32), device=device)
        self.expressive = np.array([p.expressive for p in pairs])
        self.neutral = np.array([p.neutral for p in pairs])
        self.labels = torch.tensor([subject_index.get(p.subject, -1) for p in pairs], dtype=torch.long)
        self.reader = BatchReader(dataset.vertices, self.expressive, self.neutral, self.labels.numpy(),
                                  seed, self.batch_size, rank, world_size)
        self.num_workers = num_workers
        self._loader: DataLoader | None = None
        self._sampler = _StepSampler()

    @property
    def steps_per_epoch(self) -> int:
        # The ragged tail is dropped: the network is BatchNorm-free, but equal steps keep every
        # process (and a resumed run) in step.
        return len(self.pairs) // self.global_batch_size

    def order(self, epoch: int) -> np.ndarray:
        return epoch_order(self.seed, epoch, len(self.pairs))

    def faces(self, vertices: np.ndarray) -> tuple[torch.Tensor, SimilarityTransform | None]:
        """Faces (B, n, 3) in mm -> (aligned and normalised, on the device; their transforms)."""
        x = torch.from_numpy(np.ascontiguousarray(vertices, dtype=np.float32)).to(self.device)
        x, _, transform = align_pairs(self.alignment, self.template, x)
        return (x - self.mean) / self.std, transform

    def restore(self, faces: torch.Tensor, transform: SimilarityTransform | None) -> torch.Tensor:
        """Inverse of :meth:`faces`: normalised faces in the template's frame -> mm in the input's."""
        faces = faces * self.std + self.mean
        return faces if transform is None else transform.invert(faces)

    def pair_tensors(self, expressive: torch.Tensor, neutral: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n, 3) mm pairs, on any device -> aligned (by the expressive face) and normalised, on the device."""
        x_e, x_n, _ = align_pairs(self.alignment, self.template, expressive.to(self.device, non_blocking=True),
                                  neutral.to(self.device, non_blocking=True))
        return (x_e - self.mean) / self.std, (x_n - self.mean) / self.std

    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This process's share of global batch ``step`` of ``epoch``, normalised, on the device."""
        return self._to_device(self.reader[(epoch, step)])

    def epoch_batches(self, epoch: int, start_step: int = 0):
        """Yield :meth:`batch` for steps ``start_step ..`` of ``epoch``, read ahead by the workers."""
        if self.num_workers == 0:
            for step in range(start_step, self.steps_per_epoch):
                yield self.batch(epoch, step)
            return
        self._sampler.position = (epoch, start_step, self.steps_per_epoch)
        for raw in self._data_loader():
            yield self._to_device(raw)

    def rows(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_e, x_n = self.pair_tensors(_read(self.dataset.vertices, self.expressive[rows]),
                                     _read(self.dataset.vertices, self.neutral[rows]))
        return x_e, x_n, self.labels[rows].to(self.device)

    def _to_device(self, raw: tuple[torch.Tensor, torch.Tensor, torch.Tensor]):
        x_e, x_n, labels = raw
        return (*self.pair_tensors(x_e, x_n), labels.to(self.device, non_blocking=True))

    def _data_loader(self) -> DataLoader:
        if self._loader is None:
            self._loader = DataLoader(
                self.reader, batch_size=None, sampler=self._sampler, num_workers=self.num_workers,
                pin_memory=self.device.type == "cuda", persistent_workers=True, prefetch_factor=4,
            )
        return self._loader


class BatchReader(Dataset):
    """Raw (expressive mm, neutral mm, labels) of one process's share of a global batch.

    Indexed by ``(epoch, step)``, so that DataLoader workers can read ahead while the order
    stays a function of the epoch. Pickles without copying a memory-mapped vertex array (the
    workers of a ``spawn`` or ``forkserver`` start re-open the file).
    """

    def __init__(self, vertices: np.ndarray, expressive: np.ndarray, neutral: np.ndarray, labels: np.ndarray,
                 seed: int, batch_size: int, rank: int, world_size: int) -> None:
        self.vertices = vertices
        self.expressive, self.neutral, self.labels = expressive, neutral, labels
        self.seed = seed
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size

    def rows(self, epoch: int, step: int) -> np.ndarray:
        start = (step * self.world_size + self.rank) * self.batch_size
        return epoch_order(self.seed, epoch, len(self.expressive))[start:start + self.batch_size]

    def __getitem__(self, position: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = self.rows(*position)
        return (_read(self.vertices, self.expressive[rows]), _read(self.vertices, self.neutral[rows]),
                torch.from_numpy(self.labels[rows]))

    def __len__(self) -> int:
        return len(self.expressive)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        vertices = self.vertices
        if isinstance(vertices, np.memmap) and vertices.filename:
            state["vertices"] = ("memmap", vertices.filename, vertices.dtype.str, vertices.shape, vertices.offset)
        return state

    def __setstate__(self, state: dict) -> None:
        vertices = state["vertices"]
        if isinstance(vertices, tuple) and vertices[0] == "memmap":
            _, filename, dtype, shape, offset = vertices
            state["vertices"] = np.memmap(filename, dtype=np.dtype(dtype), mode="r", shape=shape, offset=offset)
        self.__dict__.update(state)


def _read(vertices: np.ndarray, indices: np.ndarray) -> torch.Tensor:
    # Sorted reads walk a memory map forwards (read-ahead helps); the batch keeps its own order.
    order = np.argsort(indices, kind="stable")
    block = np.empty((len(indices), *vertices.shape[1:]), dtype=np.float32)
    block[order] = vertices[indices[order]]
    return torch.from_numpy(block)


class _StepSampler(Sampler):
    """Yields ``(epoch, step)`` for the steps left in the current epoch (set before each pass)."""

    def __init__(self) -> None:
        self.position = (0, 0, 0)  # epoch, first step, steps per epoch

    def __iter__(self):
        epoch, start, stop = self.position
        return iter([(epoch, step) for step in range(start, stop)])

    def __len__(self) -> int:
        return max(self.position[2] - self.position[1], 0)
