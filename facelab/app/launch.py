"""Starting the app: the QApplication, the main window, and the optional screenshot-and-quit mode.

``facelab gui`` calls :func:`run_gui`. The data, then the model (torch with it), are read in a
thread begun first of all (:func:`open_main_window`), while the QApplication and the window come
up; :meth:`MainWindow.start` shows each as it arrives. With ``screenshot=PATH`` the
window opens, loads its data, shows the first sample, saves a picture of the whole window (VTK
views included, grabbed from the screen) and quits: ``make run`` does this on a machine without a
display, and ``scripts/screenshot_app.py`` builds on it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NO_DISPLAY_MESSAGE = (
    "facelab gui needs a display: none is set (DISPLAY/WAYLAND_DISPLAY). Run it on a desktop, or under a "
    "virtual X server: xvfb-run -a facelab gui --screenshot app.png"
)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("win32", "darwin")


def choose_platform() -> None:
    """The views are native X11 windows (VTK's Qt widget): on a Wayland desktop, Qt uses XWayland.
    Set before any other thread starts (changing the environment while another thread reads it is
    not safe in C)."""
    if sys.platform.startswith("linux") and os.environ.get("WAYLAND_DISPLAY") and os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")


def make_application(argv: list[str] | None = None):
    """The QApplication (created once), named so QSettings and the window manager know it."""
    from PySide6.QtWidgets import QApplication

    from facelab.app.settings import APPLICATION, ORGANISATION

    app = QApplication.instance()
    if app is None:
        choose_platform()
        app = QApplication(argv or [sys.argv[0] if sys.argv else "facelab"])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    # No application display name: Qt appends it to every window title (" — facelab"), and the
    # main window's title already begins with the app's name.
    return app


def limit_torch_threads() -> int:
    """Torch threads for inference in the UI thread and training in the worker (see
    ``ui_friendly_threads``). It imports torch: the app calls it in the thread that reads the model."""
    import torch

    from facelab.app.threads import ui_friendly_threads

    threads = ui_friendly_threads()
    torch.set_num_threads(threads)
    return threads


def grab_window(window, path: str | Path) -> Path:
    """Save the whole window as the screen shows it (``QWidget.grab`` would miss the GL views)."""
    from PySide6.QtWidgets import QApplication

    from facelab.atomic import atomic_path

    QApplication.processEvents()
    window.viewer.render_all()
    QApplication.processEvents()
    screen = window.screen() or QApplication.primaryScreen()
    pixmap = screen.grabWindow(window.winId())
    if pixmap.isNull() or pixmap.width() == 0:
        pixmap = window.grab()
    path = Path(path)
    with atomic_path(path) as tmp:
        if not pixmap.save(str(tmp), "PNG"):
            from facelab.errors import FacelabError

            raise FacelabError(f"{path} could not be written.")
    return path


def open_main_window(data: str | None = "synth", checkpoint: str | None = None, input_mesh: str | None = None,
                     ground_truth: str | None = None, options: dict | None = None,
                     size: tuple[int, int] | None = None):
    """``facelab gui``'s start: the QApplication and the main window, shown, with the data being
    read in a thread begun before the window is built, and the model after the data's first
    sample is drawn. Returns (app, window); the event loop then fills the window."""
    from facelab.app.startup import start_reading
    from facelab.app.threads import ui_friendly_threads

    # First of all, before Qt's import: the data's read overlaps the window's imports.
    choose_platform()
    reading = start_reading(checkpoint, data, options, ui_friendly_threads())
    from PySide6.QtCore import QTimer

    app = make_application()
    from facelab.app._qt_main_window import MainWindow

    window = MainWindow()
    if size is not None:
        window.resize(*size)
    window.show()
    QTimer.singleShot(0, lambda: window.start(data, checkpoint, input_mesh, ground_truth, options, reading))
    return app, window


def run_gui(data: str | None = "synth", checkpoint: str | None = None, input_mesh: str | None = None,
            ground_truth: str | None = None, screenshot: str | None = None, identities: int | None = None,
            size: tuple[int, int] | None = None, screenshot_delay_ms: int = 1500) -> int:
    """Open the main window and run the event loop; returns the exit status."""
    from facelab.errors import FacelabError

    if not has_display():
        raise FacelabError(NO_DISPLAY_MESSAGE)
    options = {"identities": identities} if identities else None
    app, window = open_main_window(data, checkpoint, input_mesh, ground_truth, options, size)
    from PySide6.QtCore import QTimer

    result = {"status": 0}
    if screenshot:
        def shoot() -> None:
            try:
                grab_window(window, screenshot)
                print(f"wrote {screenshot}")
            except FacelabError as error:
                print(f"facelab: error: {error}", file=sys.stderr)
                result["status"] = 2
            window.close()
            app.quit()

        armed = []

        def when_ready(*_args) -> None:
            if not armed:
                armed.append(True)
                QTimer.singleShot(screenshot_delay_ms, shoot)

        def on_error(_title: str, message: str) -> None:
            # A user error's message box is modal and waits for a click that never comes here:
            # the screenshot shows it (over the data, which start() opens before its boxes), the
            # sentence goes to stderr, and the exit status is 2.
            print(f"facelab: error: {message}", file=sys.stderr)
            result["status"] = 2
            when_ready()

        window.error_shown.connect(on_error)
        window.started.connect(when_ready)
        QTimer.singleShot(600_000, shoot)  # whatever else goes wrong, quit after a while
    status = app.exec()
    return result["status"] or status
