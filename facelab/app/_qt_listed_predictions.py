"""The listed samples of the open dataset, predicted in the background a chunk at a time."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QObject, QThreadPool, Slot

from facelab.app.session import Entry, predict_entries
from facelab.app.state import AppState
from facelab.app.workers import Call, error_message, run_in_thread

log = logging.getLogger(__name__)

#: Listed samples predicted per background task: a batch long enough to amortise the network's
#: per-call cost, short enough that a new listing (another model, part or dataset) soon takes over.
PREDICTION_CHUNK = 32


class ListedPredictions(QObject):
    """Predicts the entries it is given in ``pool``, one chunk at a time in their order, and keeps
    each chunk's predictions in the session, so that a click shows a known prediction and a
    switch only updates the views.

    Args:
        state: the app's state; its session's model and dataset at the time of each chunk are used.
        pool: the thread pool the chunks run in (the window waits for it when it closes).
        may_run: asked before each chunk; False pauses (a training run has the cores, or the
            window is closing) until :meth:`resume`.
        parent: the owning QObject (the window).
    """

    def __init__(self, state: AppState, pool: QThreadPool, may_run: Callable[[], bool],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.pool, self.may_run = state, pool, may_run
        self._queue: deque[Entry] = deque()
        self._running: Call | None = None

    def restart(self, entries: list[Entry]) -> None:
        """Predict ``entries`` (those already predicted are skipped), in this order."""
        self._queue = deque(entries)
        self.resume()

    def clear(self) -> None:
        """Predict nothing more (a chunk under way finishes)."""
        self._queue.clear()

    def pending(self) -> bool:
        """Whether entries are still to be predicted."""
        return self._running is not None or bool(self.state.session.unpredicted(list(self._queue)))

    @Slot()
    def resume(self) -> None:
        """Start the next chunk, unless one runs or running is not allowed now."""
        if self._running is not None or not self.may_run():
            return
        session = self.state.session
        chunk = []
        while self._queue and len(chunk) < PREDICTION_CHUNK:
            chunk += session.unpredicted([self._queue.popleft()])
        if not chunk:
            return
        model, dataset = session.model, session.dataset
        self._running = run_in_thread(self.pool, lambda: (model, dataset, predict_entries(model, dataset, chunk)),
                                      self._on_predicted, self._on_failed, self._on_done)

    @Slot(object)
    def _on_predicted(self, result) -> None:
        model, dataset, predictions = result
        self.state.session.keep_predictions(predictions, model, dataset)

    @Slot(object)
    def _on_failed(self, error: BaseException) -> None:
        log.warning("predicting the listed samples failed: %s", error_message(error), exc_info=error)
        self._queue.clear()     # a click still predicts its own sample (and says why not)

    @Slot()
    def _on_done(self) -> None:
        self._running = None
        self.resume()
