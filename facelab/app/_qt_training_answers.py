"""What the main window does when the training panel's run reports: its previews shown in the
centre views, the loaded model's prediction back when the run ends, and the offer to load the
run's checkpoint."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QMainWindow, QMessageBox

log = logging.getLogger(__name__)


class TrainingAnswers(QObject):
    """Connects ``window.training``'s run signals to ``window``.

    Args:
        window: facelab's ``MainWindow``, whose training panel and viewer exist already.
    """

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        panel = window.training
        panel.preview_ready.connect(self._on_preview)
        panel.run_finished.connect(self._on_finished)
        panel.run_failed.connect(self._on_failed)
        panel.user_error.connect(lambda message: window.error("Cannot start training", message))
        panel.running_changed.connect(self._on_running)

    @Slot(object)
    def _on_preview(self, event) -> None:
        window = self.window
        if window._closed or window.viewer.topology_key is None:
            return
        if len(event.expressive) != window.viewer.topology_key[0]:
            window.status(f"Training preview at step {event.global_step} (another template than the one shown).")
            return
        window.state.show_preview(event)

    def _end_preview(self) -> None:
        """Back to the loaded model's prediction (a run's previews end with the run)."""
        if not self.window._closed:
            self.window.state.end_preview()

    @Slot(bool)
    def _on_running(self, running: bool) -> None:
        if not running:
            self._end_preview()
            self.window.predictions.resume()     # paused while the run had the cores

    @Slot(object)
    def _on_finished(self, result) -> None:
        window = self.window
        if window._closed:
            return
        self._end_preview()
        checkpoint = result.best_checkpoint or result.last_checkpoint
        summary = window.training.summary(result)
        window.status(f"{summary} Run folder: {result.run_dir}.")
        if checkpoint is None:
            return
        if checkpoint == result.best_checkpoint and result.epochs_done == 0:
            which = f"its start, its best model so far ({checkpoint})"
        elif checkpoint == result.best_checkpoint:
            which = f"its best model (the lowest validation error, {checkpoint})"
        else:
            which = f"the model it saved when it {'stopped' if result.status == 'stopped' else 'ended'} ({checkpoint})"
        title = "Training finished" if result.status == "completed" else "Training stopped"
        answer = QMessageBox.question(window, title, f"{summary}\n\nLoad {which}?")
        if answer == QMessageBox.StandardButton.Yes:
            window.open_checkpoint(checkpoint)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        log.warning("training failed:\n%s", details)
        if not self.window._closed:
            self._end_preview()
            self.window.error("Training failed", message)
