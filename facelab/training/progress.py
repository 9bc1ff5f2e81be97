"""A tqdm progress bar for training on the command line."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

from facelab.training.events import EpochDone, Preparing, RunFinished, RunStarted, StepDone, TrainingCallback


class TqdmProgress(TrainingCallback):
    """One bar over all steps of the run, with the current losses, and a line per epoch."""

    def __init__(self, disable: bool | None = False) -> None:
        self.disable = disable
        self.bar: tqdm | None = None

    def on_preparing(self, event: Preparing) -> None:
        if not self.disable:
            tqdm.write(f"{event.stage} ...", file=sys.stderr)

    def on_run_started(self, event: RunStarted) -> None:
        total = event.epochs * event.steps_per_epoch
        done = event.start_epoch * event.steps_per_epoch + event.start_step
        # Written to a log (no terminal), the bar still reports, every 30 s rather than every step.
        interval = 0.1 if sys.stderr.isatty() else 30.0
        self.bar = tqdm(total=total, initial=done, unit="step", desc=f"train {event.variant}", disable=self.disable,
                        mininterval=interval)

    def on_step(self, event: StepDone) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(epoch=f"{event.epoch + 1}/{event.epochs}", loss=f"{event.losses['total']:.4f}",
                                 rec=f"{event.losses['rec']:.4f}", refresh=False)

    def on_epoch(self, event: EpochDone) -> None:
        if self.bar is not None:
            best = " (best)" if event.is_best else ""
            self.bar.write(f"epoch {event.epoch + 1}/{event.epochs}: loss {event.metrics.get('total', float('nan')):.4f}, "
                           f"validation error {event.metrics['val_mean_error_mm']:.3f} mm{best}")

    def on_finished(self, event: RunFinished) -> None:
        if self.bar is not None:
            self.bar.close()

    def on_failed(self, error: BaseException) -> None:
        if self.bar is not None:
            self.bar.close()
