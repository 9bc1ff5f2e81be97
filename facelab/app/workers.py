"""Work off the UI thread: training runs and slow loads, reporting through Qt signals only.

A slow load is one call of :func:`run_in_thread`: a ``QRunnable`` in the window's thread pool,
handing its result or its exception to bound slots of the UI. Training is the core
:class:`~facelab.training.Trainer`, the same loop as ``facelab train``, in a ``QThread`` of its own
(:class:`TrainingWorker`): the trainer reports through callbacks as seven typed events and pauses
and stops through the core's :class:`~facelab.training.TrainingControl`. Either way no Qt widget or
VTK object is touched from a worker thread.

superqt's ``create_worker`` (napari's ``thread_worker``) was tried for the loads and not kept: it
made the app longer, not shorter, and runs every job inside ``warnings.catch_warnings()`` with
every warning turned on and routed to the job, which is process-wide state that the training
thread, the start-up reader and the UI change at the same time.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Qt, QThread, QThreadPool, Signal, Slot

from facelab.errors import FacelabError, is_path_error, os_error_sentence
from facelab.training.events import TrainingCallback, TrainingControl


class _CallSignals(QObject):
    """The signals of one :class:`Call` (a ``QRunnable`` is not a ``QObject``)."""

    returned = Signal(object)
    errored = Signal(object)
    finished = Signal()


class Call(QRunnable):
    """One function called in a pool thread; its result or exception, then ``finished``, go out as
    signals. The caller keeps it until ``finished`` (the pool does not delete it)."""

    def __init__(self, function: Callable[[], object]) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.function = function
        self.signals = _CallSignals()

    def run(self) -> None:
        try:
            result = self.function()
        except BaseException as error:  # the app survives any failure of a load; the slot shows or logs it
            self.signals.errored.emit(error)
        else:
            self.signals.returned.emit(result)
        finally:
            self.signals.finished.emit()


def run_in_thread(pool: QThreadPool, function: Callable[[], object], returned: Callable[[object], None],
                  errored: Callable[[BaseException], None], finished: Callable[[], None] | None = None) -> Call:
    """Call ``function()`` in ``pool``; ``returned`` gets its result, or ``errored`` its exception, then ``finished`` runs.

    Pass bound slots of a UI-thread QObject: they run in the UI thread (the signals are queued
    there, the call emitting them from the pool's thread), and Qt drops them with their object, so
    a closed window is never touched. ``finished``'s ``sender()`` is the returned call's ``signals``.
    """
    call = Call(function)
    call.signals.returned.connect(returned)
    call.signals.errored.connect(errored)
    if finished is not None:
        call.signals.finished.connect(finished)
    pool.start(call)
    return call


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
                 trainer_factory: Callable | None = None, resume: bool = False) -> None:
        super().__init__()
        self.config = config
        self.run_dir = Path(run_dir)
        self.dataset = dataset
        self.init_checkpoint = init_checkpoint
        self.resume = resume
        self.control = TrainingControl()
        self._trainer_factory = trainer_factory

    @Slot()
    def run(self) -> None:
        from facelab.training.trainer import Trainer

        try:
            factory = self._trainer_factory or Trainer
            trainer = factory(self.config, self.run_dir, callbacks=[_Forward(self)], control=self.control,
                              dataset=self.dataset, init_checkpoint=self.init_checkpoint, resume=self.resume)
            result = trainer.run()
            self.finished.emit(result)
        except BaseException as error:  # shown in the UI; the app survives it
            self.failed.emit(error_message(error), traceback.format_exc())
        finally:
            self.done.emit()


class WorkerThread(QObject):
    """A QThread running a :class:`TrainingWorker`'s ``run`` slot, ending when it says ``done``."""

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
