"""What ``facelab gui`` opens at start: the data, then the model, arriving from a reading thread.

The data's first sample shows as soon as the data arrive, with "Loading the model ..." in the
prediction view; the model is read only after that sample is drawn (torch's import and the
window's drawing both hold the GIL), then the sample is predicted and the meshes asked for open.
Message boxes come last, so the window behind them already shows the data.
"""

from __future__ import annotations

import logging
import traceback
from concurrent.futures import Future

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QMainWindow

from facelab.app.session import model_fits_dataset
from facelab.app.startup import StartReading, start_reading
from facelab.app.threads import ui_friendly_threads
from facelab.app.workers import error_message

log = logging.getLogger(__name__)


class _Arrival(QObject):
    """Hands a future's result to the UI thread: ``arrived`` is queued there from the reading thread."""

    arrived = Signal(object)      # the done Future

    def deliver(self, future: Future) -> None:
        self.arrived.emit(future)


class WindowStart(QObject):
    """Opens the start's data and model in ``window`` as they arrive.

    Args:
        window: facelab's ``MainWindow``; ``started`` is emitted on it once all of the start is
            open or has said why not.
    """

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.reading: StartReading | None = None       # the data and model, being read
        self._meshes: tuple[str | None, str | None] = (None, None)
        self._errors: list[tuple[str, str]] = []       # message boxes, shown once all is read
        self._failed = False                           # a bug while reading: its box was shown

    def begin(self, data: str | None, checkpoint: str | None, input_mesh: str | None,
              ground_truth: str | None, data_options: dict | None, reading: StartReading | None) -> None:
        """Says what is loading and attaches to ``reading`` (begun here when None)."""
        window = self.window
        label = "SynthFaces" if str(data) == "synth" else str(data) if data else ""
        window.state.set_loading(f"Loading the model{' and ' + label if label else ''} ...")
        window.status(window.loading, 0)
        window._set_busy(True)
        self._meshes = (input_mesh, ground_truth)
        self._errors, self._failed = [], False
        if reading is None:
            reading = start_reading(checkpoint, data, data_options, ui_friendly_threads())
        self.reading = reading
        for future, arrived in ((reading.data, self._on_data), (reading.model, self._on_model)):
            arrival = _Arrival(self)
            # Queued even when the read is done already: begin() returns before anything is shown.
            arrival.arrived.connect(arrived, Qt.ConnectionType.QueuedConnection)
            future.add_done_callback(arrival.deliver)

    def wait(self) -> None:
        if self.reading is not None:
            self.reading.wait()

    def _result(self, reading: Future):
        """The read's result, or None after its failure (a bug) was said."""
        try:
            return reading.result()
        except Exception as error:  # a bug while reading: its message, and the app goes on
            self._failed = True
            self._on_failed(error_message(error), "".join(traceback.format_exception(error)))
            return None

    @Slot(object)
    def _on_data(self, reading: Future) -> None:
        try:
            self._show_data(reading)
        finally:
            self.reading.release_model()       # the first sample is drawn (or none is): torch may come now

    def _show_data(self, reading: Future) -> None:
        """The data arrived (the model is not read yet): its first sample shows, unpredicted."""
        window = self.window
        read = self._result(reading)
        if window._closed or self._failed:
            return
        if read is None or read.dataset is None:
            if read is not None and read.error:
                self._errors.append(("Cannot open dataset", read.error))
            return
        window.state.loading = "Loading the model ..."         # the prediction view says so
        window._keep_file_sample = bool(self._meshes[0])
        window._on_dataset_loaded((read.path, read.options, read.dataset))
        window.status(window.loading, 0)

    @Slot(object)
    def _on_model(self, reading: Future) -> None:
        """The model arrived (after the data): the sample on show is predicted, then the meshes
        asked for open, then the message boxes."""
        window = self.window
        window._set_busy(bool(window._tasks))
        read = self._result(reading)
        if window._closed or self._failed or read is None:
            return
        window.state.loading = None
        window.training.form.load_choices()
        reason = model_fits_dataset(read.model, window.session.dataset)
        if window.session.model is not None:
            pass                            # the user opened a model while this one was read: theirs stays
        elif read.model is not None and reason is None:
            window.set_model(read.model, read.label)
            dataset = window.session.dataset
            # the model's summary is the status bar's permanent label already: not repeated here
            window.status(f"Opened {dataset.name}." if dataset is not None else f"Model {read.label} loaded.")
        else:
            window._update_model_label()    # no longer loading
            if read.model is None and read.bundled:
                window._say_no_model(read.error)
            elif read.model is None:
                self._errors.append(("Cannot open checkpoint", read.error))
            elif read.bundled:              # the data asked for wins over the default model
                window._offer_training(reason)
            else:
                self._errors.append(("Cannot use this model", reason))
            window._reshow()                # the views stop saying the model is loading
        input_mesh, ground_truth = self._meshes
        if input_mesh and window.open_mesh(input_mesh) and ground_truth and not window._closed:
            window.open_ground_truth(ground_truth)
        for title, message in self._errors:
            if window._closed:
                return
            window.error(title, message)
        if not window._closed:
            window.browser.focus_list()
            window.started.emit()
            QTimer.singleShot(0, window.training.make_plot)    # the last part of the window, once its data shows

    def _on_failed(self, message: str, details: str) -> None:
        window = self.window
        if window._closed:
            return
        log.warning("reading the model and data failed:\n%s", details)
        window.state.set_loading(None)
        window.error("Cannot start", message)
        if not window._closed:
            window.started.emit()
