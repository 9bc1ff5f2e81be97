"""Fixtures shared by the desktop-app tests (imported by tests/test_app_*.py; no tests here).

A tiny paired dataset (8 subjects on a 162-vertex icosphere) is written in the generic layout and
a model is trained on it for one epoch, once per test session. Every GUI test gets settings in a
temporary folder, message boxes that record instead of blocking, and a check that no VTK
interactor outlives it.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_tiny_dataset

TINY_SUBJECTS = 8


def display_available() -> bool:
    """An X display (pytest-xvfb starts Xvfb when it is installed); VTK's Qt widget needs X, not the
    'offscreen' Qt platform."""
    return bool(os.environ.get("DISPLAY")) and os.environ.get("QT_QPA_PLATFORM", "xcb") not in ("offscreen", "minimal")


#: Put on every test that opens a window: without Xvfb (``make system-deps`` installs it) they are skipped.
needs_display = pytest.mark.skipif(not display_available(),
                                   reason="no X display: install xvfb (make system-deps) for the GUI tests")


@functools.cache
def tiny_root() -> Path:
    """``<root>/data`` (generic layout) and ``<root>/run`` (a 1-epoch model), built once."""
    from facelab.data.layouts.generic import write_generic
    from facelab.training import TrainConfig, Trainer

    root = Path(tempfile.mkdtemp(prefix="facelab-app-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    write_generic(make_tiny_dataset(subjects=TINY_SUBJECTS), root / "data", "ply", progress=False)
    config = TrainConfig(data=str(root / "data"), epochs=1, batch_size=4, num_threads=1, tensorboard=False,
                         preview_every=0)
    Trainer(config, root / "run").run()
    return root


@pytest.fixture
def tiny_data():
    from facelab.data import load_dataset

    return load_dataset(tiny_root() / "data", progress=False)


@pytest.fixture
def tiny_model():
    from facelab.model import FaceLabModel

    return FaceLabModel.load(tiny_root() / "run" / "best")


class MessageBoxes:
    """QMessageBox static functions, recorded instead of shown."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.answer = None

    def kinds(self, kind: str) -> list[tuple[str, str, str]]:
        return [call for call in self.calls if call[0] == kind]


@pytest.fixture(autouse=True)
def message_boxes(monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    boxes = MessageBoxes()
    boxes.answer = QMessageBox.StandardButton.No

    def recorder(kind):
        def record(_parent, title, text, *args, **kwargs):
            boxes.calls.append((kind, title, text))
            return boxes.answer if kind == "question" else QMessageBox.StandardButton.Ok
        return record

    for kind in ("critical", "warning", "information", "question", "about"):
        monkeypatch.setattr(QMessageBox, kind, staticmethod(recorder(kind)))
    return boxes


@pytest.fixture(autouse=True)
def app_settings(tmp_path, monkeypatch):
    """Settings in a temporary folder: tests never read or write the user's."""
    from facelab.app.settings import SETTINGS_DIR_ENV

    folder = tmp_path / "settings"
    monkeypatch.setenv(SETTINGS_DIR_ENV, str(folder))
    return folder


@pytest.fixture(autouse=True)
def no_interactor_outlives_the_test():
    """As pyvistaqt's own suite does for its plotters: every VTK render window a test opened is
    closed when it ends."""
    from facelab.app._qt_render_widget import OPEN

    before = set(OPEN)
    yield
    left = set(OPEN) - before
    assert not left, f"{len(left)} render window(s)/interactor(s) left open by the test"


@pytest.fixture
def window(qtbot, tiny_model, tiny_data):
    """The main window on the tiny dataset with the tiny model, first test sample on show."""
    from facelab.app._qt_main_window import MainWindow
    from facelab.app.launch import limit_torch_threads

    import torch

    threads = torch.get_num_threads()
    limit_torch_threads()
    win = MainWindow()
    win.resize(1300, 820)
    win.show()
    qtbot.waitExposed(win)
    assert win.set_model(tiny_model)
    assert win.set_dataset(tiny_data, source=str(tiny_root() / "data"))
    yield win
    win.close()
    assert win.viewer._closed
    torch.set_num_threads(threads)


def shown(win, key: str) -> np.ndarray | None:
    """The points the view's actor renders (read back from its mapper's input), None if hidden."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    surface = win.viewer.surface(key)
    if surface is None or not surface.actor.GetVisibility():
        return None
    return vtk_to_numpy(surface.actor.GetMapper().GetInput().GetPoints().GetData()).copy()
