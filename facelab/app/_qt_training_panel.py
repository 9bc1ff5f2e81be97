"""The training panel: its form (:mod:`facelab.app._qt_training_form`), Start / Pause-Resume /
Stop, progress with ETA, live curves.

Training is the core ``Trainer`` in a worker thread (:mod:`facelab.app.workers`); this panel
receives its events as queued signals and never blocks the UI. Torch gets every core (see
:func:`~facelab.app.threads.ui_friendly_threads`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from facelab.app._qt_training_form import TrainingForm
from facelab.app.training_run import TrainingRequest, format_duration, plural, run_summary, validation_history
from facelab.app.workers import TrainingWorker, WorkerThread
from facelab.errors import FacelabError

if TYPE_CHECKING:
    from facelab.app._qt_loss_plot import LossPlot

REFRESH_MS = 200


class TrainingPanel(QWidget):
    preview_ready = Signal(object)     # facelab.training.events.Preview
    run_finished = Signal(object)      # RunFinished
    run_failed = Signal(str, str)      # message, traceback
    running_changed = Signal(bool)
    user_error = Signal(str)           # a form error, shown by the window

    def __init__(self, context, parent: QWidget | None = None) -> None:
        """``context`` answers ``open_dataset_context()`` -> (dataset, source, options) or None,
        ``current_model()`` -> model or None, and ``selected_index()`` -> mesh index or None."""
        super().__init__(parent)
        self.context = context
        self.runner: WorkerThread | None = None
        self.worker: TrainingWorker | None = None
        self._closing = False
        self._last_step = None
        self._started_at = None
        self._run_info = None
        self._final_text: str | None = None   # the bar's text once the run has ended
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self._refresh)
        self._set_running(False)

    # ---- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        form_box = QWidget()
        form_box.setMaximumWidth(430)
        column = QVBoxLayout(form_box)
        column.setContentsMargins(0, 0, 0, 0)
        self.form = TrainingForm(self.context)
        column.addWidget(self.form)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step; the run keeps a valid 'last' checkpoint")
        for button in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        column.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        # A busy bar (range 0-0) draws no text whatever its format: the set-up stage is written
        # over the bar instead, centred as the bar's own text would be.
        self.progress_stage = QLabel("", self.progress)
        self.progress_stage.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.progress_stage.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.progress_stage.setStyleSheet("background: transparent;")
        self.progress_stage.hide()
        self.progress.installEventFilter(self)
        column.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addWidget(self.status)
        column.addStretch(1)
        outer.addWidget(form_box)
        # The curves' plot (pyqtgraph, a large import) is made by make_plot(), after the app's first sample.
        self.plot: LossPlot | None = None
        self._plot_box = QWidget()
        QVBoxLayout(self._plot_box).setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self._plot_box, 1)

        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)

    def make_plot(self) -> LossPlot:
        """The loss curves' plot, made on first need: pyqtgraph's import (with the Qt modules it
        brings) would hold the window's first frame back."""
        if self.plot is None:
            from facelab.app._qt_loss_plot import LossPlot

            self.plot = LossPlot()
            self._plot_box.layout().addWidget(self.plot)
        return self.plot

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        if watched is self.progress and event.type() == event.Type.Resize:
            self.progress_stage.setGeometry(self.progress.rect())
        return super().eventFilter(watched, event)

    def _set_stage(self, text: str) -> None:
        """Show ``text`` on the bar: its format when it has a range, a label over it while it is busy."""
        self.progress.setFormat(text)
        busy = self.progress.minimum() == self.progress.maximum() == 0
        self.progress_stage.setText(text if busy else "")
        self.progress_stage.setGeometry(self.progress.rect())
        self.progress_stage.setVisible(busy and bool(text))

    def progress_text(self) -> str:
        """What the bar reads now (a busy bar's own text is empty: then the stage over it)."""
        if self.progress_stage.isVisible():
            return self.progress_stage.text()
        return self.progress.text()

    def prepare_new_run_on_open_dataset(self) -> None:
        """Make the form ready to train a new network on the open dataset: only Start is left."""
        if not self.running:
            self.form.prepare_new_run_on_open_dataset()
            self.start_button.setFocus()

    # ---- a run -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True from Start until the UI has handled the run's last event (not only until the
        worker thread ends: its last signals may still be queued then)."""
        return self.runner is not None

    @Slot()
    def start(self, request: TrainingRequest | None = None) -> bool:
        """Start a run (the form's, unless ``request`` is given); False if it could not start."""
        if self.running:
            return False
        try:
            request = request or self.form.request()
        except FacelabError as error:
            self.user_error.emit(str(error))
            return False
        self.worker = TrainingWorker(request.config, request.run_dir, request.dataset, request.init_checkpoint,
                                     resume=request.resume)
        worker = self.worker
        worker.preparing.connect(self._on_preparing)
        worker.run_started.connect(self._on_run_started)
        worker.step_done.connect(self._on_step)
        worker.epoch_done.connect(self._on_epoch)
        worker.checkpoint_saved.connect(self._on_checkpoint)
        worker.preview.connect(self._on_preview)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.done.connect(self._on_done)
        self.runner = WorkerThread(worker, self)
        self.make_plot().reset()
        if request.resume:                  # the epochs the run completed before
            for epoch, error in validation_history(request.run_dir):
                self.plot.add_epoch(epoch, error)
        self._last_step = None
        self._run_info = None
        self._final_text = None
        self._started_at = time.perf_counter()
        self.progress.setRange(0, 0)        # busy until the trainer reports its size
        self._set_stage("preparing ...")
        self.status.setText(f"Continuing the run in {request.run_dir}" if request.resume else
                            f"Training {request.config.variant} into {request.run_dir}")
        self._set_running(True)
        self.runner.start()
        self.timer.start()
        return True

    @Slot()
    def toggle_pause(self) -> None:
        if not self.running or self.worker is None or self.worker.control.stop_requested:
            return
        control = self.worker.control
        if control.paused:
            control.resume()
            self.pause_button.setText("Pause")
            self.status.setText("Resumed.")
        else:
            control.pause()
            self.pause_button.setText("Resume")
            self.status.setText("Paused (the worker waits between steps).")
        self._refresh()

    @Slot()
    def stop(self) -> None:
        if self.running and self.worker is not None:
            self.worker.control.stop()
            self.stop_button.setEnabled(False)
            self.pause_button.setEnabled(False)
            self.status.setText("Stopping after the current step; saving a checkpoint ...")

    def shutdown(self) -> None:
        """Stop a run and wait for its thread (the window is closing): no signal is handled after."""
        self._closing = True
        self.timer.stop()
        if self.worker is not None:
            for signal in (self.worker.preparing, self.worker.run_started, self.worker.step_done, self.worker.epoch_done,
                           self.worker.checkpoint_saved, self.worker.preview, self.worker.finished,
                           self.worker.failed):
                try:
                    signal.disconnect()
                except (RuntimeError, TypeError):
                    pass
            self.worker.control.stop()
        if self.runner is not None:
            self.runner.wait()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.pause_button.setText("Pause")
        self.form.set_running(running)
        self.running_changed.emit(running)

    # ---- events from the worker (queued to the UI thread) ------------------------------------
    @Slot(object)
    def _on_preparing(self, event) -> None:
        self._set_stage(f"{event.stage} ...")

    @Slot(object)
    def _on_run_started(self, event) -> None:
        self._run_info = event
        total = max(1, event.epochs * event.steps_per_epoch)
        self.progress.setRange(0, total)
        self.progress.setValue(event.start_epoch * event.steps_per_epoch + event.start_step)
        start = f"epoch {event.start_epoch + 1}/{event.epochs} - starting" if event.epochs else "saving the start"
        self._set_stage(start)
        self.status.setText(f"{event.train_pairs} training pairs of {event.train_subjects} subjects, "
                            f"{event.validation_subjects} validation subjects, {event.steps_per_epoch} steps "
                            f"per epoch, {event.device}; run folder {event.run_dir}")

    @Slot(object)
    def _on_step(self, event) -> None:
        self._last_step = event
        self.plot.add_step(event.global_step, event.losses)

    @Slot(object)
    def _on_epoch(self, event) -> None:
        error = event.metrics.get("val_mean_error_mm")
        self.plot.add_epoch(event.epoch + 1, error)
        best = " (best so far)" if event.is_best else ""
        if error is not None and error == error:
            self.status.setText(f"Epoch {event.epoch + 1}/{event.epochs}: loss {event.metrics.get('total', float('nan')):.4f}, "
                                f"validation error {error:.3f} mm{best}")

    @Slot(object)
    def _on_checkpoint(self, event) -> None:
        pass

    @Slot(object)
    def _on_preview(self, event) -> None:
        if not self._closing:
            self.preview_ready.emit(event)

    @Slot(object)
    def _on_finished(self, result) -> None:
        self.status.setText(f"{self.summary(result)} Run folder: {result.run_dir}")
        self._refresh()
        self._final_text = self._final_progress_text(result)
        self._show_final()
        if not self._closing:
            self.run_finished.emit(result)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.status.setText(f"<span style='color:#b00020'>Training failed: {message}</span>")
        step = self._last_step
        if step is None:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        self._final_text = "failed" + (f" at step {step.global_step}" if step is not None else "")
        self._show_final()
        if not self._closing:
            self.run_failed.emit(message, details)

    @Slot()
    def _on_done(self) -> None:
        if self.runner is not None:
            self.runner.wait()
        self.timer.stop()
        self._refresh()
        self.runner = None
        self._set_running(False)
        self.form.new_output_folder()             # the next run gets a new folder (unless the user chose one)

    def summary(self, result) -> str:
        """How the run ``result`` ended, in one sentence."""
        return run_summary(result, self._last_step)

    def _final_progress_text(self, result) -> str:
        step = self._last_step
        if result.status == "completed":
            best = result.best_val_error_mm
            done = plural(result.epochs_done, "epoch") if result.epochs_done else "the start only"
            return (f"completed: {done}"
                    + (f", best validation {best:.2f} mm" if best is not None and best == best else ""))
        if step is None:
            return "stopped before the first step"
        saved = "last checkpoint saved" if result.last_checkpoint is not None else "no checkpoint saved"
        return f"stopped at step {step.global_step} of {step.epochs * step.steps_per_epoch} ({saved})"

    def _show_final(self) -> None:
        """The bar as the run left it, with its final text (not the progress text of its last step)."""
        if self.progress.minimum() == self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        if self._final_text is not None and self._final_text.startswith("completed"):
            self.progress.setValue(self.progress.maximum())
        self._set_stage(self._final_text or "idle")

    @Slot()
    def _refresh(self) -> None:
        if self.plot is not None:
            self.plot.refresh()
        if self._final_text is not None:
            self._show_final()
            return
        step = self._last_step
        if step is None:
            return
        total = max(1, step.epochs * step.steps_per_epoch)
        if self.progress.maximum() != total:
            self.progress.setRange(0, total)
        self.progress.setValue(step.global_step)
        paused = self.worker is not None and self.worker.control.paused and self.running
        eta = "paused" if paused else f"ETA {format_duration(step.eta_s)}"
        self._set_stage(f"epoch {step.epoch + 1}/{step.epochs} - step {step.step + 1}/{step.steps_per_epoch}"
                        f" - {eta}")
