"""Work off the UI thread: a function's result or error reaches the UI thread, and closing waits for it."""

from __future__ import annotations

import threading

import pytest

from facelab.errors import FacelabError
from tests.test_app_fixtures import (  # noqa: F401  (fixtures)
    app_settings,
    message_boxes,
    needs_display,
    no_interactor_outlives_the_test,
    tiny_data,
    tiny_model,
    window,
)

pytestmark = [pytest.mark.gui, needs_display]


def _receiver():
    from PySide6.QtCore import QObject, Slot

    class Receiver(QObject):
        """Bound slots, as the window passes: each records what it got and in which thread."""

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[str, object, bool]] = []

        def _record(self, name: str, value: object = None) -> None:
            self.calls.append((name, value, threading.current_thread() is threading.main_thread()))

        @Slot(object)
        def returned(self, value) -> None:
            self._record("returned", value)

        @Slot(object)
        def errored(self, error) -> None:
            self._record("errored", error)

        @Slot()
        def finished(self) -> None:
            self._record("finished")

    return Receiver()


def test_the_result_or_the_error_reaches_the_ui_thread_then_finished(qtbot):
    from PySide6.QtCore import QThreadPool

    from facelab.app.workers import error_message, run_in_thread

    receiver = _receiver()
    pool = QThreadPool(receiver)
    ran_in = []

    def work():
        ran_in.append(threading.current_thread() is threading.main_thread())
        return 42

    def fail():
        raise FacelabError("the data is bad.")

    failing = _receiver()
    run_in_thread(pool, work, receiver.returned, receiver.errored, receiver.finished)
    run_in_thread(pool, fail, failing.returned, failing.errored, failing.finished)
    qtbot.waitUntil(lambda: len(receiver.calls) == 2 and len(failing.calls) == 2, timeout=10_000)
    assert ran_in == [False], "the function runs off the UI thread"
    assert [(name, on_ui) for name, _value, on_ui in receiver.calls] == [("returned", True), ("finished", True)]
    assert [(name, on_ui) for name, _value, on_ui in failing.calls] == [("errored", True), ("finished", True)]
    assert receiver.calls[0][1] == 42
    assert error_message(failing.calls[0][1]) == "the data is bad."


def test_an_exit_in_a_call_still_reaches_its_slots(qtbot):
    """Whatever the function raises, its error and its end are reported: the window never stays busy."""
    from PySide6.QtCore import QThreadPool

    from facelab.app.workers import run_in_thread

    receiver = _receiver()
    pool = QThreadPool(receiver)
    run_in_thread(pool, lambda: exit(3), receiver.returned, receiver.errored, receiver.finished)
    qtbot.waitUntil(lambda: len(receiver.calls) == 2, timeout=10_000)
    assert [name for name, _value, _on_ui in receiver.calls] == ["errored", "finished"]
    assert isinstance(receiver.calls[0][1], SystemExit)


def test_waiting_on_a_windows_pool_waits_for_every_call_running_or_queued(qtbot):
    """What closing the window relies on: after ``waitForDone`` no work of its pool still runs or is to come."""
    from PySide6.QtCore import QThreadPool

    from facelab.app.workers import run_in_thread

    receiver = _receiver()
    pool = QThreadPool(receiver)
    release, done = threading.Event(), []
    run_in_thread(pool, lambda: release.wait(10), receiver.returned, receiver.errored)
    run_in_thread(pool, lambda: done.append("queued"), receiver.returned, receiver.errored)
    threading.Timer(0.2, release.set).start()
    pool.waitForDone()
    assert release.is_set() and done == ["queued"]


def test_closing_the_window_mid_load_waits_for_the_load_and_shows_nothing_after(window, qtbot, message_boxes,
                                                                               monkeypatch, tiny_data):
    from PySide6.QtWidgets import QApplication

    import facelab.data.layouts

    release, loads = threading.Event(), []

    def slow_load(*_args, **_kwargs):
        loads.append("started")
        release.wait(10)
        loads.append("ended")
        return tiny_data

    monkeypatch.setattr(facelab.data.layouts, "load_dataset", slow_load)
    opened = []
    window.dataset_opened.connect(opened.append)
    window.open_dataset("elsewhere")
    qtbot.waitUntil(lambda: loads == ["started"], timeout=10_000)
    threading.Timer(0.2, release.set).start()
    window.close()
    assert loads == ["started", "ended"], "closing waits for the load under way"
    QApplication.processEvents()               # the load's result and its end, queued to the closed window
    assert not opened and not message_boxes.calls and not window._tasks
