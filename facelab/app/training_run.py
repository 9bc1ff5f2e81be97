"""A training run started from the app, in plain Python: what it needs (:class:`TrainingRequest`),
where it goes (a fresh time-stamped folder), what a folder's earlier run left to continue
(:func:`saved_run`), and how it ended, in words.

Qt-free: the training panel (``_qt_training_panel``) builds the request from its form and shows
these texts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from facelab.training.config import TrainConfig


def default_runs_root() -> Path:
    """Where the runs of the default output folders go (``~/facelab-runs``)."""
    return Path.home() / "facelab-runs"


def fresh_run_dir(root: Path | None = None) -> Path:
    """A new time-stamped run folder under ``root`` that holds no run yet (``gui-20250101-120000``,
    then ``-2``, ``-3`` ... within the same second)."""
    root = Path(root) if root is not None else default_runs_root()
    stem = time.strftime("gui-%Y%m%d-%H%M%S")
    candidate, number = root / stem, 1
    while candidate.exists():
        number += 1
        candidate = root / f"{stem}-{number}"
    return candidate


@dataclass(frozen=True)
class SavedRun:
    """Where a run in a folder stands, from its ``config.json`` and its ``last`` checkpoint."""

    variant: str
    epochs: int           # the run's own number of epochs
    epochs_done: int
    step: int             # steps done in the epoch under way (0 at an epoch's end)

    @property
    def finished(self) -> bool:
        return self.epochs_done >= self.epochs and self.step == 0

    def describe(self) -> str:
        """Where it stands, in words (the form's tooltip)."""
        if self.finished:
            return (f"a finished {self.variant} run of {plural(self.epochs, 'epoch')}: continuing it with more "
                    f"epochs extends it")
        where = f", step {self.step} of the next" if self.step else ""
        return f"a {self.variant} run stopped after {self.epochs_done} of {plural(self.epochs, 'epoch')}{where}"


def saved_run(folder: str | Path) -> SavedRun | None:
    """The run ``folder`` holds, if it has one to continue (its settings and a ``last`` checkpoint);
    None otherwise. Reads two small JSON files: no torch."""
    folder = Path(folder).expanduser()
    if not (folder / "last.safetensors").is_file():
        return None
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        position = json.loads((folder / "last.json").read_text(encoding="utf-8"))["position"]
        return SavedRun(str(config.get("variant", "full")), int(config["epochs"]), int(position["epoch"]),
                        int(position["step"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def validation_history(folder: str | Path) -> list[tuple[int, float]]:
    """The (epoch, validation error in mm) of each epoch a run in ``folder`` completed, from its
    ``metrics.csv`` (empty without one): what the validation plot shows of a run continued."""
    import csv

    try:
        with open(Path(folder) / "metrics.csv", newline="", encoding="utf-8") as handle:
            return [(int(row["epoch"]), float(row["val_mean_error_mm"])) for row in csv.DictReader(handle)
                    if row.get("val_mean_error_mm")]
    except (OSError, ValueError, KeyError):
        return []


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def run_summary(result, last_step=None) -> str:
    """One sentence on how a run ended, in steps when no epoch completed (the panel and the
    window's dialog say the same). ``result`` is the trainer's RunFinished, ``last_step`` its last
    StepDone (None when no step ran)."""
    best = result.best_val_error_mm
    best_text = f", best validation error {best:.3f} mm" if best is not None and best == best else ""
    if result.status == "completed":
        if result.epochs_done == 0:
            return f"Fitted the start only, no training step{best_text}."
        return f"Training completed: {plural(result.epochs_done, 'epoch')}{best_text}."
    if last_step is None:
        return "Training stopped before its first step: nothing was trained."
    where = f"step {last_step.global_step} of {last_step.epochs * last_step.steps_per_epoch}"
    if result.epochs_done == 0:
        if best_text:    # the identity-preserving variant validates its start before the first step
            return (f"Training stopped at {where}, before the first epoch ended; its best is still its start "
                    f"(validation error {best:.3f} mm).")
        return f"Training stopped at {where}, before the first epoch ended (no validation yet)."
    return (f"Training stopped at {where}, after {plural(result.epochs_done, 'complete epoch')} of "
            f"{last_step.epochs}{best_text}.")


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@dataclass
class TrainingRequest:
    """Everything one run needs, gathered from the form and the app (Qt-free, testable)."""

    config: TrainConfig
    run_dir: Path
    dataset: object | None = None          # an open FaceDataset, or None to load config.data
    init_checkpoint: Path | None = None
    resume: bool = False                   # continue the run in run_dir (its own settings; config's
                                           # epochs extend it, its threads run it)
