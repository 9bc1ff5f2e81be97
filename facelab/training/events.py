"""What a training run reports, and how it is steered while it runs.

The trainer calls a :class:`TrainingCallback` at each event; the CLI turns the events into a
tqdm bar, the GUI into Qt signals (the trainer itself never touches Qt). A
:class:`TrainingControl` is checked at every step: ``stop()`` ends the run after the current
step with a valid checkpoint, ``pause()`` blocks the loop until ``resume()``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Preparing:
    """A slow set-up stage before the first step (``prepare`` can take a minute on big data)."""

    stage: str            # e.g. "loading data", "fitting the linear start", the start's validation error


@dataclass(frozen=True)
class RunStarted:
    run_dir: Path
    epochs: int
    start_epoch: int
    start_step: int
    steps_per_epoch: int
    train_subjects: int
    validation_subjects: int
    train_pairs: int
    variant: str
    device: str


@dataclass(frozen=True)
class StepDone:
    epoch: int            # 0-based
    step: int             # 0-based within the epoch
    global_step: int      # steps done in the whole run, this one included
    steps_per_epoch: int
    epochs: int
    losses: dict[str, float]
    elapsed_s: float      # since this process started the run
    eta_s: float | None   # to the end of the run, from the pace so far


@dataclass(frozen=True)
class EpochDone:
    epoch: int            # 0-based, the epoch just finished
    epochs: int
    metrics: dict[str, float]   # mean training losses and "val_mean_error_mm"
    is_best: bool


@dataclass(frozen=True)
class CheckpointSaved:
    path: Path
    kind: str             # "last" or "best"
    epoch: int


@dataclass(frozen=True)
class Preview:
    """The model-in-training's prediction for one chosen sample (all in mm)."""

    global_step: int
    pair_index: int       # index into the dataset's pairs
    expressive: np.ndarray
    predicted: np.ndarray
    ground_truth: np.ndarray
    error: np.ndarray     # (n,) per-vertex Euclidean error


@dataclass(frozen=True)
class RunFinished:
    status: str           # "completed" or "stopped"
    run_dir: Path
    epochs_done: int
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_val_error_mm: float | None


class TrainingCallback:
    """Override what you need; every method is a no-op by default."""

    def on_preparing(self, event: Preparing) -> None: ...
    def on_run_started(self, event: RunStarted) -> None: ...
    def on_step(self, event: StepDone) -> None: ...
    def on_epoch(self, event: EpochDone) -> None: ...
    def on_checkpoint(self, event: CheckpointSaved) -> None: ...
    def on_preview(self, event: Preview) -> None: ...
    def on_finished(self, event: RunFinished) -> None: ...
    def on_failed(self, error: BaseException) -> None: ...


@dataclass
class TrainingControl:
    """A cooperative stop/pause flag, safe to set from another thread."""

    _stop: threading.Event = field(default_factory=threading.Event)
    _running: threading.Event = field(default_factory=threading.Event)
    _holding: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused loop must wake up to stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def holding(self) -> bool:
        """True while the training loop waits in :meth:`wait_while_paused` (no step under way)."""
        return self._holding.is_set()

    def wait_while_paused(self) -> None:
        if self._running.is_set():
            return
        self._holding.set()
        try:
            while not self._running.wait(timeout=0.1):
                pass
        finally:
            self._holding.clear()
