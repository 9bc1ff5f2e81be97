"""Work off the UI thread: training runs and slow loads, reporting through Qt signals only.

The worker objects live in a ``QThread``; their ``run`` slot executes there and talks to the UI
exclusively by emitting signals (queued to the UI thread), so no Qt widget or VTK object is ever
touched from the worker thread. Training is the core :class:`~facelab.training.Trainer`, the same
loop as ``facelab train``, steered by its :class:`~facelab.training.TrainingControl`.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from facelab.errors import FacelabError, is_path_error, os_error_sentence
from facelab.training.events import TrainingCallback, TrainingControl


def ui_friendly_threads() -> int:
    """Torch threads for the app's work (training in the worker, inference in the UI thread): every core.

    Leaving a core to the UI costs the run its speed and buys the UI nothing: the UI thread waits
    for events while a run trains, and the OS schedules it between the trainer's threads. Measured
    on 2 cores (SynthFaces, 100 identities, batch 16, the worker running the trainer while a 10 ms UI
    timer ticks; the machine shared with other jobs, load average 2.2): all threads 0.57 s a step,
    timer gaps at most 14 ms; one thread 0.82 s a step, at most 11 ms. At load average 4 every figure
    is worse and noisier (all threads 1.6-2.1 s a step, one thread 1.1-1.7 s, gaps at most 19-47 ms,
    still within the app's 50 ms target).
    """
    return max(1, os.cpu_count() or 1)


def error_message(error: BaseException) -> str:
    """A user error's own sentence (a path the system refused is one too); anything else with its
    type, since it is a bug."""
    if isinstance(error, FacelabError):
        return str(error)
    if is_path_error(error):
        return os_error_sentence(error)
    return f"{type(error).__name__}: {error}"


class _Forward(TrainingCallback):
    """Trainer events -> the worker's signals (called in the worker thread; emits only)."""

    def __init__(self, worker: TrainingWorker) -> None:
        self.worker = worker

    def on_preparing(self, event) -> None:
        self.worker.preparing.emit(event)

    def on_run_started(self, event) -> None:
        self.worker.run_started.emit(event)

    def on_step(self, event) -> None:
        self.worker.step_done.emit(event)

    def on_epoch(self, event) -> None:
        self.worker.epoch_done.emit(event)

    def on_checkpoint(self, event) -> None:
        self.worker.checkpoint_saved.emit(event)

    def on_preview(self, event) -> None:
        self.worker.preview.emit(event)


class TrainingWorker(QObject):
    """Runs one :class:`Trainer` to its end; ``done`` is always the last signal."""

    preparing = Signal(object)         # Preparing
    run_started = Signal(object)       # RunStarted
    step_done = Signal(object)         # StepDone
    epoch_done = Signal(object)        # EpochDone
    checkpoint_saved = Signal(object)  # CheckpointSaved
    preview = Signal(object)           # Preview
    finished = Signal(object)          # RunFinished
    failed = Signal(str, str)          # message, traceback
    done = Signal()

    def __init__(self, config, run_dir: str | Path, dataset=None, init_checkpoint: str | Path | None = None,
                 trainer_factory: Callable | None = None) -> None:
        super().__init__()
        self.config = config
        self.run_dir = Path(run_dir)
        self.dataset = dataset
        self.init_checkpoint = init_checkpoint
        self.control = TrainingControl()
        self._trainer_factory = trainer_factory

    @Slot()
    def run(self) -> None:
        from facelab.training.trainer import Trainer

        try:
            factory = self._trainer_factory or Trainer
            trainer = factory(self.config, self.run_dir, callbacks=[_Forward(self)], control=self.control,
                              dataset=self.dataset, init_checkpoint=self.init_checkpoint)
            result = trainer.run()
            self.finished.emit(result)
        except BaseException as error:  # shown in the UI; the app survives it
            self.failed.emit(error_message(error), traceback.format_exc())
        finally:
            self.done.emit()


class Task(QObject):
    """Calls one function in a worker thread and reports its result or its error."""

    succeeded = Signal(object)
    failed = Signal(str, str)
    done = Signal()

    def __init__(self, function: Callable[[], object]) -> None:
        super().__init__()
        self.function = function

    @Slot()
    def run(self) -> None:
        try:
            result = self.function()
            self.succeeded.emit(result)
        except BaseException as error:
            self.failed.emit(error_message(error), traceback.format_exc())
        finally:
            self.done.emit()


class WorkerThread(QObject):
    """A QThread running one worker's ``run`` slot, ending when the worker says ``done``."""

    def __init__(self, worker: QObject, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName(f"facelab-{type(worker).__name__}")
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        # Direct: quit() is thread-safe, and the UI thread may be blocked in wait() (closing the app).
        worker.done.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.isRunning()

    def wait(self, milliseconds: int | None = None) -> bool:
        if milliseconds is None:
            return self.thread.wait()
        return self.thread.wait(milliseconds)
