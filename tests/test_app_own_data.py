"""A user's own data: data of another template than the model's leads to training a model on it,
and the training panel's identities box applies to every source that samples identities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.test_app_fixtures import (  # noqa: F401  (fixtures)
    app_settings,
    message_boxes,
    needs_display,
    no_interactor_outlives_the_test,
    shown,
    tiny_data,
    tiny_model,
    window,
)

pytestmark = [pytest.mark.gui, needs_display]

IDENTITIES = 4


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def morphable_model_file(folder: Path) -> Path:
    """A small morphable-model .npz (10 vertices: another template than the tiny model's 162)."""
    from facelab.data.morphable_model import MorphableModel

    rng = np.random.default_rng(0)
    neutral = rng.normal(size=(10, 3)) * 50
    faces = np.array([[0, 1, 2], [2, 3, 4], [5, 6, 7], [7, 8, 9]])
    model = MorphableModel(neutral, faces, rng.normal(size=(4, 10, 3)), rng.normal(size=(5, 10, 3)),
                           tuple(f"shape{i}" for i in range(5)), 5)
    return model.save(folder / "my_face_model.npz")


def _open(window, qtbot, message_boxes, path: Path) -> None:
    """Open ``path`` as the File menu does and wait for its question about the model."""
    asked = len(message_boxes.kinds("question"))
    window.open_dataset(path, {"identities": IDENTITIES})
    qtbot.waitUntil(lambda: len(message_boxes.kinds("question")) > asked and not window._tasks, timeout=60_000)


def test_another_templates_data_offers_to_train_a_new_network_on_it(window, qtbot, message_boxes, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    panel = window.training
    path = morphable_model_file(tmp_path)
    panel.form.finetune.setChecked(True)
    panel.form.source.setCurrentIndex(panel.form.source.findData("synth"))
    panel.form._source_chosen = True

    # Declined: the dataset and model on show stay, and so does the training form.
    dataset, model = window.session.dataset, window.session.model
    _open(window, qtbot, message_boxes, path)
    (_kind, title, text), = message_boxes.kinds("question")
    assert title == "Train a model on this dataset?"
    assert "fits its own template only" in text and "it expects 162 vertices" in text, text
    assert "train a model on it" in text and "new network" in text, text
    assert "open data registered" not in text
    assert window.session.dataset is dataset and window.session.model is model
    assert panel.form.source.currentData() == "synth" and panel.form.finetune.isChecked()

    # Accepted: the data is open without a model and the training panel is ready to start on it.
    window.training_dock.hide()
    message_boxes.answer = QMessageBox.StandardButton.Yes
    _open(window, qtbot, message_boxes, path)
    qtbot.waitUntil(lambda: window.session.dataset is not dataset, timeout=10_000)
    opened = window.session.dataset
    assert opened.layout == "ict-facekit" and window.session.model is None
    assert window.training_dock.isVisible()
    assert panel.form.source.currentData() == "open" and panel.form.scratch.isChecked()
    assert panel.start_button.isEnabled()
    assert panel.form.identities.isEnabled() and panel.form.identities.value() == IDENTITIES
    request = panel.form.request()
    assert request.dataset is opened and request.init_checkpoint is None
    assert Path(request.config.data) == path and request.config.data_options == {"identities": IDENTITIES}
    assert "press Start" in window.statusBar().currentMessage()


def test_data_of_another_template_at_start_opens_without_the_bundled_model(qtbot, message_boxes, tmp_path):
    """``facelab gui --data MY_DATA``: the data asked for open, the bundled model (SynthFaces
    only) is left closed with the reason said, and the training panel is ready to train on it."""
    from facelab.app._qt_main_window import MainWindow

    path = morphable_model_file(tmp_path)
    win = MainWindow()
    try:
        win.show()
        with qtbot.waitSignal(win.started, timeout=60_000):
            win.start(str(path), data_options={"identities": IDENTITIES})
        assert not message_boxes.calls
        assert win.session.model is None and win.session.dataset.layout == "ict-facekit"
        assert win.sample is not None and shown(win, "input") is not None and shown(win, "predicted") is None
        assert "No model" in win.viewer.views["predicted"].note.GetInput() and win.model_label.text() == "No model"
        status = win.statusBar().currentMessage()
        assert "The bundled model fits its own template only (SynthFaces)" in status and "press Start" in status
        assert win.training_dock.isVisible() and win.training.form.source.currentData() == "open"
        assert win.training.start_button.isEnabled()
    finally:
        win.close()


def test_a_checkpoint_of_another_template_at_start_is_refused_and_the_data_opens(qtbot, message_boxes, tmp_path,
                                                                                 tiny_model):
    from facelab.app._qt_main_window import MainWindow

    path = morphable_model_file(tmp_path)
    win = MainWindow()
    try:
        win.show()
        with qtbot.waitSignal(win.started, timeout=60_000):
            win.start(str(path), str(tiny_model.source), data_options={"identities": IDENTITIES})
        (kind, title, text), = message_boxes.calls
        assert kind == "critical" and title == "Cannot use this model" and "it expects 162 vertices" in text, text
        assert win.session.model is None and win.session.dataset.layout == "ict-facekit"
        assert win.model_label.text() == "No model" and shown(win, "input") is not None
    finally:
        win.close()


def test_the_message_names_the_bundled_model_and_its_template():
    from types import SimpleNamespace

    from facelab.app.session import model_fits_dataset
    from facelab.model import bundled_model_path

    bundled = SimpleNamespace(source=bundled_model_path(), n_vertices=4239, meta={"data": {"layout": "synth"}})
    mine = SimpleNamespace(name="my scans", n_vertices=5023, topology_hash="x")
    reason = model_fits_dataset(bundled, mine)
    assert reason.startswith("the bundled model fits its own template only (SynthFaces): it expects 4239 vertices")
    assert reason.endswith("my scans has 5023.")


def test_the_identities_box_applies_to_every_source_that_samples_identities(window, qtbot, message_boxes, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    panel = window.training
    path = morphable_model_file(tmp_path)
    # The tiny dataset (a folder of meshes) has its own subjects: nothing to sample.
    panel.form.source.setCurrentIndex(panel.form.source.findData("open"))
    assert not panel.form.identities.isEnabled()
    panel.form.source.setCurrentIndex(panel.form.source.findData("synth"))
    assert panel.form.identities.isEnabled()

    # A morphable-model file given as a path: a first run can be small.
    panel.form.source.setCurrentIndex(panel.form.source.findData("path"))
    panel.form.data_path.setText(str(tiny_folder := tmp_path / "folder"))
    tiny_folder.mkdir()
    assert not panel.form.identities.isEnabled()
    panel.form.data_path.setText(str(path))
    assert panel.form.identities.isEnabled()
    panel.form.identities.setValue(3)
    assert panel.form.request().config.data_options == {"identities": 3}

    # The open morphable model: the box starts at its count; another count is sampled by the trainer.
    message_boxes.answer = QMessageBox.StandardButton.Yes
    _open(window, qtbot, message_boxes, path)
    qtbot.waitUntil(lambda: window.session.dataset.layout == "ict-facekit", timeout=10_000)
    panel.form.source.setCurrentIndex(panel.form.source.findData("open"))
    assert panel.form.identities.isEnabled() and panel.form.identities.value() == IDENTITIES
    panel.form.identities.setValue(2)
    request = panel.form.request()
    assert request.dataset is None and request.config.data_options == {"identities": 2}
