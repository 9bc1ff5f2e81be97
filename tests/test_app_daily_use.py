"""What a new user meets in a day with the app: a run stopped or finished, a second run, the set-up
stage, previews, going back to the bundled model, the data box, the loss plot's axes, identity
labels, the window title, opening a run folder as a checkpoint and the gallery header (pytest-qt, Xvfb)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

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
    tiny_root,
    window,
)

pytestmark = [pytest.mark.gui, needs_display]

VIEWS = ("input", "predicted", "truth")


def _titles(win) -> dict[str, str]:
    return {key: win.viewer.views[key].title.GetInput() for key in VIEWS}


def _configure(panel, epochs, preview_every=0, batch=4, out=None, method="identity-preserving"):
    panel.form.source.setCurrentIndex(panel.form.source.findData("open"))
    panel.form.load_choices()
    panel.form.variant.setCurrentIndex(panel.form.variant.findData(method))
    panel.form.epochs.setValue(epochs)
    panel.form.batch_size.setValue(batch)
    panel.form.preview_every.setValue(preview_every)
    if out is not None:
        panel.form.out_dir.setText(str(out))


@pytest.fixture
def runs_root(tmp_path, monkeypatch, window):
    """The default output folders go under the test's folder (never ~/facelab-runs)."""
    from facelab.app import training_run

    root = tmp_path / "runs"
    monkeypatch.setattr(training_run, "default_runs_root", lambda: root)
    window.training.form.new_output_folder()          # the proposed folder, under the new root
    assert window.training.form.out_dir.text().startswith(str(root))
    return root


# ---- 1, 4, 5: a stopped run ---------------------------------------------------------------------
def test_stop_says_where_the_run_stopped_and_the_views_go_back_to_the_model(window, qtbot, tmp_path, message_boxes,
                                                                          tiny_model):
    from PySide6.QtCore import Qt

    panel = window.training
    _configure(panel, epochs=50, preview_every=2, batch=1, out=tmp_path / "run")
    rendered = []
    window.viewer.rendered.connect(lambda _s: rendered.append(_titles(window)))
    finished = []
    panel.run_finished.connect(finished.append)
    assert panel.start()
    # Stop right after the first preview, in the worker's thread: the run stops at that step,
    # long before its first epoch ends (the preview still reaches the views).
    control = panel.worker.control
    panel.worker.preview.connect(lambda _event: control.stop(), Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert finished and finished[0].status == "stopped" and finished[0].epochs_done == 0
    steps_per_epoch = panel._run_info.steps_per_epoch
    assert steps_per_epoch > 2

    # 4: while the preview was on show only the predicted view said so.
    during = [titles for titles in rendered if any("(training" in t for t in titles.values())]
    assert during, "the preview was shown"
    for titles in during:
        assert "(training, step 2)" in titles["predicted"]
        assert "(training" not in titles["input"] and "(training" not in titles["truth"], titles
    # ... and once the run stopped the views show the loaded model's prediction again (the user
    # answered No to loading the stopped run's model).
    assert window.preview is None and window.session.model is tiny_model
    assert all("(training" not in title for title in _titles(window).values())
    np.testing.assert_allclose(shown(window, "predicted"), tiny_model.neutralise(np.array(window.sample.expressive)),
                               atol=1e-4)
    assert "Training preview" not in window.readout.text()

    # 1: the bar says where the run stopped, and a later refresh leaves it so.
    expected = f"stopped at step 2 of {50 * steps_per_epoch} (last checkpoint saved)"
    assert panel.progress_text() == expected
    panel._refresh()                                # as the UI timer would
    assert panel.progress_text() == expected and "ETA" not in panel.progress_text()
    assert panel.progress.value() == 2

    # 5: the dialog says what happened, in steps since no epoch completed.
    (kind, title, text), = message_boxes.kinds("question")
    assert title == "Training stopped"
    assert f"stopped at step 2 of {50 * steps_per_epoch}, before the first epoch ended" in text
    assert "0 epochs" not in text
    # The default variant validated its start before the first step: that start is the run's best
    # so far, and the dialog offers it as such.
    assert "its best is still its start (validation error " in text
    assert f"Load its start, its best model so far ({tmp_path / 'run' / 'best'})" in text
    assert "0 epochs" not in panel.status.text()


# ---- 1, 2, 4: a completed run, and a second one ------------------------------------------------
def test_a_completed_run_says_so_and_the_next_start_gets_a_new_folder(window, qtbot, message_boxes, runs_root,
                                                                      tiny_model, tmp_path):
    panel = window.training
    _configure(panel, epochs=1, preview_every=2, batch=4)
    first = panel.form.out_dir.text()
    finished = []
    panel.run_finished.connect(finished.append)
    assert panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert finished and finished[0].status == "completed"
    best = finished[0].best_val_error_mm
    assert panel.progress_text() == f"completed: 1 epoch, best validation {best:.2f} mm"
    panel._refresh()
    assert panel.progress_text() == f"completed: 1 epoch, best validation {best:.2f} mm"
    assert panel.progress.value() == panel.progress.maximum()
    assert [c[1] for c in message_boxes.kinds("question")] == ["Training finished"]
    assert "Training completed: 1 epoch, best validation error" in message_boxes.kinds("question")[0][2]
    assert "(training" not in _titles(window)["predicted"] and window.session.model is tiny_model   # 4

    # 2: the next run gets a new time-stamped folder; Start is not refused.
    second = panel.form.out_dir.text()
    assert second != first and (runs_root / first.rsplit("/", 1)[-1] / "config.json").is_file()
    assert panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert not message_boxes.kinds("critical"), message_boxes.calls
    assert len(finished) == 2 and finished[1].run_dir != finished[0].run_dir
    assert sorted(p.name for p in runs_root.iterdir() if (p / "config.json").is_file()) == sorted(
        [first.rsplit("/", 1)[-1], second.rsplit("/", 1)[-1]])

    # A folder the user chose is theirs: it is kept, and a second run there is refused.
    own = tmp_path / "my-run"
    panel.form.out_dir.setText(str(own))
    panel.form.epochs.setValue(1)
    assert panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert panel.form.out_dir.text() == str(own)
    assert not panel.start()
    assert "already holds a run" in message_boxes.kinds("critical")[-1][2]


# ---- 3: the set-up stage on the busy bar ------------------------------------------------------
def test_the_set_up_stage_is_written_on_the_busy_bar(window, qtbot, tmp_path):
    from PySide6.QtCore import Qt

    panel = window.training
    _configure(panel, epochs=50, batch=2, out=tmp_path / "run")
    seen = []
    show_stage = panel._on_preparing

    def look(event) -> None:
        # In the UI thread, right after the panel showed the stage: what the user sees then.
        show_stage(event)
        seen.append((event.stage, panel.progress.minimum() == panel.progress.maximum() == 0,
                     panel.progress.text(), panel.progress_text(), panel.progress_stage.isVisible(),
                     panel.progress_stage.geometry() == panel.progress.rect()))

    panel._on_preparing = look
    assert panel.start()
    assert panel.progress_text() == "preparing ..." and panel.progress_stage.isVisible()
    control = panel.worker.control
    panel.worker.step_done.connect(lambda _event: control.stop(), Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert seen, "the trainer reported a set-up stage"
    for stage, busy, bar_text, text, visible, covers in seen:
        assert busy and bar_text == "", "Qt draws no text on a busy bar"
        assert text == f"{stage} ..." and visible and covers, seen
    assert not panel.progress_stage.isVisible()       # a bar with a range shows its own text again
    assert panel.progress_text().startswith("stopped at step")


# ---- 6: back to the bundled model -------------------------------------------------------------
def _file_action(win, text: str):
    menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "&File")
    return next(a for a in menu.actions() if a.text().replace("&", "") == text)


def test_file_menu_opens_the_bundled_model_again(window, monkeypatch, message_boxes, tiny_model, tmp_path):
    bundled = tiny_root() / "run" / "last"
    monkeypatch.setenv("FACELAB_MODEL", str(bundled))
    assert window.session.model is tiny_model              # a newly trained model is on use
    _file_action(window, "Open bundled model").trigger()
    assert window.session.model is not tiny_model and window.session.model.source == bundled
    assert "bundled" in window.model_label.text()
    assert not message_boxes.kinds("critical")
    # No bundled model: a message box, and the model on use stays.
    model = window.session.model
    monkeypatch.setenv("FACELAB_MODEL", str(tmp_path / "missing"))
    _file_action(window, "Open bundled model").trigger()
    assert window.session.model is model
    assert [c[1] for c in message_boxes.kinds("critical")] == ["Cannot open the bundled model"]
    assert "Model:" in window.model_label.text()


# ---- 7: the data box --------------------------------------------------------------------------
def test_the_data_box_defaults_to_what_is_open(qtbot, tiny_data, tiny_model):
    from PySide6.QtCore import Qt

    from facelab.app._qt_main_window import MainWindow
    from tests.conftest import make_tiny_dataset

    win = MainWindow()
    win.show()
    qtbot.waitExposed(win)
    try:
        panel = win.training
        assert panel.form.source.currentData() == "synth", "no dataset is open: SynthFaces"
        open_item = panel.form.source.model().item(panel.form.source.findData("open"))
        assert not open_item.isEnabled()
        assert panel.form.request().config.data == "synth"          # Start would not fail
        assert win.set_model(tiny_model) and win.set_dataset(tiny_data)
        assert panel.form.source.currentData() == "open" and open_item.isEnabled()
        assert panel.form.source.currentText().startswith(f"The open dataset ({tiny_data.name[:20]}")
        assert panel.form.source.itemData(panel.form.source.currentIndex(), Qt.ItemDataRole.ToolTipRole) == tiny_data.name
        assert panel.form.request().dataset is tiny_data
        # The user's own choice stays when another dataset is opened.
        synth = panel.form.source.findData("synth")
        panel.form.source.setCurrentIndex(synth)
        panel.form.source.activated.emit(synth)
        assert win.set_dataset(make_tiny_dataset(subjects=3, prefix="q"))
        assert panel.form.source.currentData() == "synth"
    finally:
        win.close()


# ---- 8: whole steps on the loss plot ----------------------------------------------------------
def test_the_loss_plot_ticks_whole_steps_and_epochs(qtbot):
    from facelab.app._qt_loss_plot import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(700, 260)
    plot.show()
    qtbot.waitExposed(plot)

    def ticks(axis):
        low, high = axis.range
        values = [v for _spacing, level in axis.tickValues(low, high, axis.width()) for v in level]
        # Labels on the axis's ends are hidden (they would stick out): count those inside.
        return [v for v in values if low < v < high], axis.tickStrings(values, axis.scale, 1)

    for axis in (plot.loss_plot.getAxis("bottom"), plot.validation.getPlotItem().getAxis("bottom")):
        values, labels = ticks(axis)                  # the empty plot
        assert len(values) >= 2 and all(float(v).is_integer() for v in values), values
        assert all("." not in label for label in labels), labels
    _values, labels = ticks(plot.loss_plot.getAxis("left"))   # the empty loss axis: whole decades
    assert {"0.01", "0.1", "1", "10"} <= set(labels), labels
    assert plot.loss_note.isVisible()
    for step in range(1, 4):
        plot.add_step(step, {"total": 100.0 / step})
    plot.refresh()
    values, labels = ticks(plot.loss_plot.getAxis("bottom"))
    assert values and all(float(v).is_integer() for v in values) and all("." not in t for t in labels)
    qtbot.waitUntil(lambda: plot.loss_plot.getAxis("left").range[1] >= 2.0)   # the losses, up to 100, in view
    assert not plot.loss_note.isVisible()
    plot.add_epoch(1, 3.2)                            # one epoch: no epoch -1 or 0.5 around it
    plot.refresh()
    values, labels = ticks(plot.validation.getPlotItem().getAxis("bottom"))
    assert 1 in values and all(float(v).is_integer() and v >= 0 for v in values), values


# ---- 13: identity labels -----------------------------------------------------------------------
def test_the_readout_leads_with_the_gallery_match_and_calls_the_recognizer_closest_training_subjects(window):
    text = window.readout.text()
    sample = window.sample
    assert sample.part == "test" and sample.top5
    assert "predicted identity" not in text.lower()
    assert "gallery match" in text and "closest training subject" in text
    assert text.index("gallery match") < text.index("closest training subject")
    matches, _rank = window.session.matches(sample, k=1)
    assert f"gallery match <b>{matches[0].subject}</b>" in text
    assert "Closest training subjects" in window.identity.top5_label.text()
    layout = window.identity.layout()
    assert layout.indexOf(window.identity.gallery) < layout.indexOf(window.identity.top5)


def test_the_readout_without_a_dataset_names_only_the_closest_training_subject(window, tmp_path, tiny_data):
    from facelab.mesh import write_mesh

    window.session.close_dataset()          # a mesh from a file, no gallery to match against
    path = tmp_path / "face.ply"
    write_mesh(tiny_data.mesh(window.entry.index), path)
    assert window.open_mesh(path)
    text = window.readout.text()
    assert "gallery match" not in text and "closest training subject" in text


# ---- 17: the window title ------------------------------------------------------------------------
def test_the_window_title_names_the_app_once(qtbot):
    from PySide6.QtGui import QGuiApplication

    from facelab.app._qt_main_window import MainWindow
    from facelab.app.launch import make_application

    app = make_application()                 # as `facelab gui` sets the application up
    names = app.applicationName(), app.organizationName()
    win = MainWindow()
    try:
        win.show()
        qtbot.waitExposed(win)
        if shutil.which("xprop"):
            # The title the window manager gets (Qt appends an application display name to it).
            shown_title = subprocess.run(["xprop", "-id", str(int(win.winId())), "_NET_WM_NAME"], capture_output=True,
                                         text=True, check=True).stdout
        else:
            # Qt's rule (QPlatformWindow::formatWindowTitle): an explicitly set display name is appended.
            app.setApplicationName("probe-name")
            display = QGuiApplication.applicationDisplayName()
            app.setApplicationName(names[0])
            explicit = display != "probe-name"
            shown_title = win.windowTitle() + (f" — {display}" if explicit and not win.windowTitle().endswith(display)
                                               else "")
        assert shown_title.count("facelab") == 1, shown_title
        assert "neutralise facial expressions" in shown_title
    finally:
        win.close()
        app.setApplicationName(names[0])
        app.setOrganizationName(names[1])


# ---- 19: a run folder or a name without extension as the checkpoint ----------------------------
def _answer_checkpoint_dialog(qtbot, typed: str | None = None, keep_offer: bool = False):
    """When File > Open checkpoint's dialog is up: type ``typed`` in its name box (or keep what it
    offers) and click Open, as a user would."""
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication, QDialogButtonBox, QLineEdit

    from facelab.app._qt_checkpoint_dialog import CheckpointDialog

    answered, offers = [], []

    def poll() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, CheckpointDialog):
            QTimer.singleShot(20, poll)
            return
        name = dialog.findChild(QLineEdit, "fileNameEdit")
        if keep_offer:
            offers.append(name.text())
        else:
            name.clear()
        if typed is not None:
            qtbot.keyClicks(name, typed)
        completer = name.completer()
        if completer is not None and completer.popup().isVisible():
            completer.popup().hide()            # the user moves on from the completions
        open_button = next(b for b in dialog.findChild(QDialogButtonBox).buttons()
                           if dialog.findChild(QDialogButtonBox).buttonRole(b) == QDialogButtonBox.ButtonRole.AcceptRole)
        answered.append(open_button.isEnabled())
        qtbot.mouseClick(open_button, Qt.MouseButton.LeftButton)
        if dialog.isVisible():                # the dialog did not take it: close it, the test fails
            dialog.reject()

    QTimer.singleShot(0, poll)
    return answered, offers


@pytest.mark.parametrize("spelling", ["run folder", "name without extension", "run folder open"])
def test_open_checkpoint_takes_the_spellings_the_cli_takes(window, qtbot, message_boxes, spelling):
    run = tiny_root() / "run"
    if spelling == "run folder":
        (answered, offers), expected = _answer_checkpoint_dialog(qtbot, typed=str(run)), run / "best"
    elif spelling == "name without extension":
        (answered, offers), expected = _answer_checkpoint_dialog(qtbot, typed=str(run / "last")), run / "last"
    else:
        # The dialog opens in the folder of the last checkpoint opened: a run folder. Its name
        # box offers "best" and Open is ready.
        window.settings.remember_folder("checkpoint", run)
        (answered, offers), expected = _answer_checkpoint_dialog(qtbot, keep_offer=True), run / "best"
    model = window.session.model
    _file_action(window, "Open checkpoint...").trigger()
    assert answered == [True], "Open was enabled"
    assert offers == (["best"] if spelling == "run folder open" else [])
    assert not message_boxes.kinds("critical"), message_boxes.calls
    assert window.session.model is not model and window.session.model.source == expected


def test_an_extensionless_checkpoint_name_is_a_checkpoint(tmp_path):
    from facelab.app import files

    run = tiny_root() / "run"
    assert files.classify(run / "best") == files.CHECKPOINT
    assert files.checkpoint_target(run / "best") == run / "best"
    assert files.checkpoint_target(run) == run
    assert files.checkpoint_target(run / "best.json") == run / "best.json"
    assert files.checkpoint_target(tiny_root() / "data") is None
    assert files.checkpoint_target(tmp_path / "nothing") is None


# ---- 22: the gallery header ----------------------------------------------------------------------
def _gallery_rows(win):
    table = win.identity.gallery
    return [(int(table.item(r, 0).text()), table.item(r, 1).text()) for r in range(table.rowCount())]


def test_the_gallery_header_agrees_with_its_table_and_forgets_the_last_dataset(window, message_boxes):
    import trimesh

    from facelab.data import FaceDataset
    from tests.conftest import make_tiny_dataset

    sample = window.sample
    subject = sample.subject
    # Every gallery face alike: all subjects tie (a recognizer that tells these faces apart badly).
    gallery = window.session.gallery_for(sample)
    gallery.embeddings[:] = gallery.embeddings[0]
    window.show_entry(window.entry)
    header = window.identity.gallery_label.text()
    rank = int(re.search(rf"true subject {subject} at rank (\d+)", header).group(1))
    from facelab.app._qt_identity_panel import TRUE_MARK
    true_rows = [row for row, name in _gallery_rows(window) if name.endswith(TRUE_MARK)]
    assert true_rows == [rank], (header, _gallery_rows(window))
    others = len(gallery) - 1
    assert f"tied with {others} other subject{'s' if others > 1 else ''} " in header
    assert f"rank {len(gallery)} when ties count against it" in header

    # Another dataset, of another template: the model is closed, nothing of the last sample stays.
    message_boxes.answer = __import__("PySide6.QtWidgets", fromlist=["QMessageBox"]).QMessageBox.StandardButton.Yes
    other = make_tiny_dataset(subjects=3, expressions=1, prefix="q")
    sphere = trimesh.creation.icosphere(subdivisions=1, radius=50.0)
    small = FaceDataset("small", "generic", np.repeat(np.asarray(sphere.vertices, np.float32)[None], len(other), 0)
                        * np.linspace(0.9, 1.1, len(other))[:, None, None], np.asarray(sphere.faces), other.records)
    assert window.set_dataset(small)
    assert window.session.model is None
    assert subject not in window.identity.gallery_label.text()
    assert window.identity.gallery.rowCount() == 0 and window.identity.top5.rowCount() == 0


def test_file_menu_exports_the_mesh_and_statistics_where_the_user_says(window, monkeypatch, message_boxes,
                                                                        tmp_path):
    from PySide6.QtWidgets import QFileDialog

    from facelab.mesh import read_ply_vertex_property

    answer = {}
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda parent, title, start, filters: (answer["name"], filters)))
    answer["name"] = str(tmp_path / "neutral.ply")
    _file_action(window, "Export predicted mesh (PLY with error)...").trigger()
    assert read_ply_vertex_property(tmp_path / "neutral.ply", "error").shape == (window.sample.predicted.shape[0],)
    assert window.statusBar().currentMessage() == f"Wrote {answer['name']}."
    answer["name"] = str(tmp_path / "error.json")
    _file_action(window, "Export error statistics (CSV/JSON)...").trigger()
    assert json.loads((tmp_path / "error.json").read_text())["mean_error_mm"] > 0
    # A format that cannot be written: one message box naming what failed, and no file.
    answer["name"] = str(tmp_path / "error.xlsx")
    _file_action(window, "Export error statistics (CSV/JSON)...").trigger()
    assert [c[1] for c in message_boxes.kinds("critical")] == ["Cannot export statistics"]
    assert not (tmp_path / "error.xlsx").exists()
