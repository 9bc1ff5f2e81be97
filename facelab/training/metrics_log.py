"""A run's record of its epochs: ``metrics.csv`` (one row per epoch) and TensorBoard scalars.

TensorBoard is optional: without it installed (or with ``TrainConfig.tensorboard`` off) only the
CSV is written. The CSV is rewritten atomically at each epoch, so an interrupted write never
leaves half a row.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_write_text

METRIC_COLUMNS = ("epoch", "total", "l1", "gan", "l2l", "id", "rec", "d", "val_mean_error_mm", "lr", "seconds")


class MetricsLog:
    """Appends an epoch's metrics to ``run_dir/metrics.csv`` and, when asked for and installed,
    to TensorBoard logs in ``run_dir/tensorboard``."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.csv"
        self._tensorboard = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                return
            self._tensorboard = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def append(self, epoch: int, metrics: dict[str, float]) -> None:
        """The row of ``epoch``; rows of that epoch or later (from before a resume) are dropped."""
        rows = []
        if self.path.exists():
            rows = [row for row in csv.DictReader(io.StringIO(self.path.read_text())) if int(row["epoch"]) < epoch]
        rows.append({"epoch": epoch, **{k: metrics.get(k, "") for k in METRIC_COLUMNS if k != "epoch"}})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buffer.getvalue())
        if self._tensorboard is not None:
            for key, value in metrics.items():
                if isinstance(value, float) and np.isfinite(value):
                    self._tensorboard.add_scalar(key, value, epoch)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
