"""The training panel: the core Trainer in a worker thread while the UI keeps running."""

from __future__ import annotations

import time

import numpy as np
import pytest

from facelab.errors import FacelabError
from facelab.training import load_checkpoint
from tests.test_app_fixtures import (  # noqa: F401  (fixtures)
    app_settings,
    message_boxes,
    needs_display,
    no_interactor_outlives_the_test,
    tiny_data,
    tiny_model,
    tiny_root,
    window,
)

pytestmark = [pytest.mark.gui, needs_display]


class Ticks:
    """A UI timer firing every 20 ms; its gaps show whether the event loop was ever blocked."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.times: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))
        self.timer.start()

    def stop(self, until: float | None = None) -> float:
        """The longest gap between ticks (up to ``until``)."""
        self.timer.stop()
        times = [t for t in self.times if until is None or t <= until]
        return float(np.max(np.diff(times))) if len(times) > 1 else float("inf")


def _configure(panel, out, epochs, preview_every=0, batch=4, method="identity-preserving"):
    panel.form.source.setCurrentIndex(panel.form.source.findData("open"))
    panel.form.load_choices()
    panel.form.variant.setCurrentIndex(panel.form.variant.findData(method))
    panel.form.epochs.setValue(epochs)
    panel.form.batch_size.setValue(batch)
    panel.form.preview_every.setValue(preview_every)
    panel.form.out_dir.setText(str(out))


def test_two_epochs_in_the_worker_while_the_ui_keeps_firing(window, qtbot, tmp_path, message_boxes, tiny_data):
    panel = window.training
    _configure(panel, tmp_path / "run", epochs=2, preview_every=4, batch=1)
    previews, finished, last_step = [], [], []
    panel.preview_ready.connect(previews.append)
    panel.run_finished.connect(finished.append)
    titles = []
    window.viewer.rendered.connect(lambda _s: titles.append(window.viewer.views["predicted"].title.GetInput()))
    message_boxes.answer = __import__("PySide6.QtWidgets", fromlist=["QMessageBox"]).QMessageBox.StandardButton.Yes
    selected = window.entry
    shown_while_preparing = []
    show_stage = panel._on_preparing
    panel._on_preparing = lambda event: (show_stage(event), shown_while_preparing.append(panel.progress.format()))
    ticks = Ticks()
    assert panel.start()
    assert panel.running and not panel.start_button.isEnabled()
    # The training's end (loading the new model, in the UI thread) is not the worker's doing.
    panel.worker.epoch_done.connect(lambda _event: last_step.append(time.perf_counter()))
    qtbot.waitUntil(lambda: not panel.running, timeout=180_000)
    started = ticks.times[0]
    max_gap = ticks.stop(until=last_step[-1])
    # Reported, not asserted: a loaded machine stretches any gap. The target (10 ms timer gaps
    # <= 50 ms while training) is app.timer_gaps in make bench; here the UI thread must keep
    # serving its timer all through the run.
    print(f"UI timer: {len(ticks.times)} ticks in {last_step[-1] - started:.1f} s of training, "
          f"max gap {max_gap * 1000:.0f} ms")
    assert sum(started < t <= last_step[-1] for t in ticks.times) >= 2, "the UI thread ran during training"
    # The choice of alignment and what chose it, the default variant's fits, each named as it
    # runs, then its start's validation error.
    named = ("choosing the alignment", "alignment ", "fitting ", "the start")
    assert shown_while_preparing and all(text.startswith(named) and text.endswith(" ...")
                                         for text in shown_while_preparing), "the busy bar names the slow set-up"
    assert shown_while_preparing[0].startswith("choosing the alignment")
    assert any(text.startswith("fitting ") for text in shown_while_preparing)
    assert finished and finished[0].status == "completed" and finished[0].epochs_done == 2
    steps = finished[0].epochs_done * (panel._run_info.steps_per_epoch)
    assert panel.progress.maximum() == steps and panel.progress.value() == steps
    assert panel.plot.steps[-1] == steps and {"total", "rec"} <= set(panel.plot.curves)
    assert len(panel.plot.epochs) == 2
    assert previews, "the views get the model-in-training's prediction"
    np.testing.assert_array_equal(previews[0].expressive, tiny_data.vertices[selected.index])   # the selected sample
    assert any("(training, step" in title for title in titles)
    assert [c[1] for c in message_boxes.kinds("question")] == ["Training finished"]
    assert window.session.model is not None and str(tmp_path / "run") in str(window.session.model.source)
    assert "(training" not in window.viewer.views["predicted"].title.GetInput()
    assert panel.start_button.isEnabled()


def test_pause_resume_and_stop_leave_a_valid_checkpoint(window, qtbot, tmp_path, message_boxes):
    from PySide6.QtWidgets import QApplication

    from facelab.model import FaceLabModel

    panel = window.training
    _configure(panel, tmp_path / "run", epochs=500, batch=2)
    finished = []
    panel.run_finished.connect(finished.append)
    steps = []
    panel.worker_steps = steps
    assert panel.start()
    panel.worker.step_done.connect(lambda e: steps.append(e.global_step))
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=60_000)
    panel.toggle_pause()
    assert panel.pause_button.text() == "Resume" and panel.worker.control.paused
    # The step under way when pausing finishes and reports; then the loop holds, and no step runs.
    qtbot.waitUntil(lambda: panel.worker.control.holding, timeout=60_000)
    QApplication.processEvents()  # the last step's report, queued before the loop held
    paused_at = len(steps)
    qtbot.waitUntil(lambda: "paused" in panel.progress.format(), timeout=10_000)
    assert panel.worker.control.holding and len(steps) == paused_at, "no step while paused"
    panel.toggle_pause()
    qtbot.waitUntil(lambda: len(steps) > paused_at + 1, timeout=60_000)
    panel.stop()
    qtbot.waitUntil(lambda: not panel.running, timeout=60_000)
    assert finished and finished[0].status == "stopped", (panel.status.text(), message_boxes.calls)
    checkpoint = load_checkpoint(tmp_path / "run" / "last")
    assert checkpoint.meta["position"]["global_step"] == steps[-1]
    assert FaceLabModel.load(tmp_path / "run" / "last").n_vertices == 162
    assert message_boxes.kinds("question"), "the app offers to load the model of a stopped run too"


def test_the_recommended_method_is_the_default_and_trains_the_bundled_models_recipe(window, tmp_path):
    from facelab.training.recipe import RECOMMENDED, recommended_config

    form = window.training.form
    form.load_choices()
    form.out_dir.setText(str(tmp_path / "run"))
    assert form.variant.currentData() == "recommended" and form.epochs.value() == 0
    config = form.request().config
    recipe = recommended_config().to_dict()
    assert {name: config.to_dict()[name] for name in RECOMMENDED} == {name: recipe[name] for name in RECOMMENDED}
    full = form.variant.findData("full")
    form.variant.setCurrentIndex(full)
    form.variant.activated.emit(full)                  # as the user's pick does
    assert form.epochs.value() == 30, "another method takes the usual default number of epochs"
    config = form.request().config
    assert (config.variant, config.fusion_mixture, config.neutral_pairs, config.epochs) == ("full", False, 0, 30)


def test_a_stopped_run_is_continued_from_the_panel_to_its_end(window, qtbot, tmp_path, message_boxes):
    panel = window.training
    run = tmp_path / "run"
    _configure(panel, run, epochs=2, batch=4)
    assert not panel.form.resume_run.isEnabled(), "an empty folder holds nothing to continue"
    finished, steps = [], []
    panel.run_finished.connect(finished.append)
    assert panel.start()
    # stopped at the second step of the second epoch
    panel.worker.step_done.connect(lambda e: (steps.append(e), panel.stop() if e.global_step == e.steps_per_epoch + 2
                                              else None))
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert finished[-1].status == "stopped" and finished[-1].epochs_done == 1
    steps_per_epoch = steps[0].steps_per_epoch
    first_epoch = list(panel.plot.val_errors)

    # The folder is the same: continuing it is offered, with the run's own number of epochs.
    assert panel.form.resume_run.isEnabled()
    assert "stopped after 1 of 2 epochs, step 2 of the next" in panel.form.resume_run.toolTip()
    panel.form.epochs.setValue(1)
    panel.form.resume_run.setChecked(True)
    assert panel.form.epochs.value() == 2 and not panel.form.variant.isEnabled()
    assert not panel.form.identities.isEnabled() and not panel.form.preview_every.isEnabled(), "the run's own"
    steps.clear()
    assert panel.start()
    panel.worker.step_done.connect(steps.append)
    assert panel.status.text().startswith("Continuing the run in")
    assert panel.plot.epochs == [1] and panel.plot.val_errors == pytest.approx(first_epoch, abs=1e-6), \
        "the validation plot starts with the epoch done before"
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert not message_boxes.kinds("critical"), message_boxes.calls
    assert finished[-1].status == "completed" and finished[-1].epochs_done == 2
    # It went on from the step it stopped at, not from the start.
    assert steps[0].global_step == steps_per_epoch + 3 and steps[-1].global_step == 2 * steps_per_epoch
    assert panel.plot.epochs == [1, 2]
    # Finished: continuing it again asks for more epochs than it has.
    assert panel.form.resume_run.isChecked() and "a finished" in panel.form.resume_run.toolTip()
    assert not panel.start()
    assert "set the epochs above 2 to extend it" in message_boxes.kinds("critical")[-1][2]
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 2


def test_failures_are_shown_as_sentences_and_bugs_with_their_type():
    from facelab.app.workers import error_message

    refused = FileNotFoundError(2, "No such file or directory", "/media/gone/run")
    assert error_message(refused) == "/media/gone/run: No such file or directory: expected a path you can read and write."
    assert error_message(FacelabError("the data is bad.")) == "the data is bad."
    assert error_message(KeyError("mean")) == "KeyError: 'mean'"


def test_a_failing_run_is_shown_and_the_app_survives(window, qtbot, tmp_path, message_boxes):
    panel = window.training
    panel.form.source.setCurrentIndex(panel.form.source.findData("path"))
    panel.form.data_path.setText(str(tmp_path / "no-such-data"))
    panel.form.out_dir.setText(str(tmp_path / "run"))
    failures = []
    panel.run_failed.connect(lambda message, details: failures.append((message, details)))
    assert panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=60_000)
    assert failures and "does not exist" in failures[0][0]
    assert [c[1] for c in message_boxes.kinds("critical")] == ["Training failed"]
    assert "failed" in panel.progress.format() and panel.start_button.isEnabled()
    before = window.entry
    window.browser.step(+1)                     # the app still works
    assert window.entry != before

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.json").write_text("{}")
    panel.form.out_dir.setText(str(tmp_path / "taken"))
    assert not panel.start()
    assert "already holds a run" in message_boxes.kinds("critical")[-1][2]


def test_closing_the_window_mid_training_stops_the_worker_and_waits(window, qtbot, tmp_path):
    panel = window.training
    _configure(panel, tmp_path / "run", epochs=500, batch=2)
    assert panel.start()
    steps = []
    panel.worker.step_done.connect(lambda e: steps.append(e.global_step))
    qtbot.waitUntil(lambda: len(steps) >= 1, timeout=60_000)
    runner = panel.runner
    started = time.perf_counter()
    window.close()
    assert time.perf_counter() - started < 30
    assert not runner.running
    assert (tmp_path / "run" / "last.json").is_file()       # the stop saved a valid checkpoint
    load_checkpoint(tmp_path / "run" / "last")


def test_a_run_trains_on_every_core_while_the_ui_timer_keeps_ticking(window, qtbot, tmp_path, message_boxes):
    import os

    import torch

    panel = window.training
    _configure(panel, tmp_path / "run", epochs=1, batch=4)
    request = panel.form.request()
    assert request.config.num_threads == os.cpu_count()
    assert torch.get_num_threads() == os.cpu_count()     # inference in the UI thread too
    ticks = Ticks()
    assert panel.start(request)
    qtbot.waitUntil(lambda: not panel.running, timeout=180_000)
    ticks.stop()
    assert len(ticks.times) >= 2, "the UI thread ran during training"


def test_fine_tuning_is_offered_only_while_a_model_is_open(window, tiny_model):
    panel = window.training
    assert panel.form.finetune.isEnabled()
    panel.form.finetune.setChecked(True)
    assert window.set_model(None)
    assert not panel.form.finetune.isEnabled() and panel.form.scratch.isChecked()
    assert "open a model first" in panel.form.finetune.toolTip()
    assert window.set_model(tiny_model)
    assert panel.form.finetune.isEnabled() and panel.form.scratch.isChecked()


def test_zero_epochs_fit_the_start_and_offer_it(window, qtbot, tmp_path, message_boxes):
    from PySide6.QtWidgets import QMessageBox

    panel = window.training
    _configure(panel, tmp_path / "fits", epochs=0)
    assert panel.form.epochs.text() == "0: fits only"
    finished = []
    panel.run_finished.connect(finished.append)
    message_boxes.answer = QMessageBox.StandardButton.Yes
    assert panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=180_000)
    assert finished and finished[0].status == "completed" and finished[0].epochs_done == 0
    assert finished[0].best_val_error_mm is not None                  # the start, validated and saved
    assert panel.progress.format().startswith("completed: the start only, best validation ")
    [(_kind, title, text)] = message_boxes.kinds("question")
    assert title == "Training finished" and text.startswith("Fitted the start only, no training step")
    assert load_checkpoint(tmp_path / "fits" / "best").meta["position"]["global_step"] == 0
    assert str(tmp_path / "fits") in str(window.session.model.source)  # the new model is open


def test_the_alignment_is_chosen_in_the_form_and_kept_when_fine_tuning(window, qtbot, tmp_path, message_boxes):
    from facelab.training.config import CHOICES

    panel = window.training
    offered = [panel.form.alignment.itemData(i) for i in range(panel.form.alignment.count())]
    assert sorted(offered) == sorted(CHOICES["alignment"])
    _configure(panel, tmp_path / "none", epochs=0)
    assert panel.form.request().config.alignment == "auto"                  # the training code's default
    panel.form.alignment.setCurrentIndex(panel.form.alignment.findData("none"))
    assert panel.form.request().config.alignment == "none"
    finished = []
    panel.run_finished.connect(finished.append)
    assert panel.start()
    assert not panel.form.alignment.isEnabled()                             # as every field, while a run runs
    qtbot.waitUntil(lambda: not panel.running, timeout=180_000)
    assert finished and finished[0].status == "completed"
    assert load_checkpoint(tmp_path / "none" / "best").meta["alignment"]["kind"] == "none"
    # Fine-tuning keeps the model's own alignment: the box is off and its choice is not sent.
    assert panel.form.alignment.isEnabled()
    panel.form.finetune.setChecked(True)
    assert not panel.form.alignment.isEnabled()
    panel.form.out_dir.setText(str(tmp_path / "tuned"))
    assert panel.form.request().config.alignment == "auto"
    panel.form.scratch.setChecked(True)
    assert panel.form.alignment.isEnabled()
