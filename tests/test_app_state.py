"""What the app shows, without Qt: the state after opening a dataset or meshes, which panels and
notes apply with and without a model and a ground truth, rolling a refused model back, and the
listeners that re-render the views."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from facelab.app import files
from facelab.app.state import NO_MODEL_NOTE, NO_SAMPLE_NOTE, NO_TRUTH_NOTE, AppState
from facelab.errors import FacelabError, TopologyMismatchError
from facelab.evaluation.metrics import per_vertex_error
from facelab.mesh import FaceMesh, read_mesh, write_mesh
from facelab.render import DisplayStyle
from facelab.training.events import Preview
from tests.conftest import make_tiny_dataset
from tests.test_app_fixtures import tiny_data, tiny_model, tiny_root  # noqa: F401  (fixtures)

STYLE = DisplayStyle()


class Heard:
    """What each of a state's events told its listeners."""

    def __init__(self, state: AppState) -> None:
        self.sample, self.views, self.identity = [], [], []
        state.events.sample.connect(self.sample.append)
        state.events.views.connect(lambda: self.views.append(True))
        state.events.identity.connect(lambda: self.identity.append(True))


def _write(tmp_path, name: str, vertices, triangles) -> str:
    path = tmp_path / name
    write_mesh(FaceMesh(np.asarray(vertices), np.asarray(triangles), name=name), path)
    return str(path)


def _small_template_mesh(tmp_path) -> str:
    """A mesh of another template than the tiny model's (100 of its 162 vertices)."""
    other = make_tiny_dataset(subjects=1)
    return _write(tmp_path, "small.ply", other.vertices[1, :100], other.triangles[other.triangles.max(axis=1) < 100])


def test_state_imports_no_qt():
    code = ("import sys, facelab.app.state; "
            "assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyvistaqt', 'pyqtgraph'))]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_dataset_entry_on_show_is_the_models_prediction_with_its_truth(tiny_model, tiny_data):
    state = AppState()
    state.set_model(tiny_model)
    state.set_dataset(tiny_data, "data-folder", {"identities": 8})
    assert state.sample is None and state.entry is None
    assert state.open_dataset_context() == (tiny_data, "data-folder", {"identities": 8})
    entry = state.session.first_entry("test")
    sample = state.show_entry(entry)
    assert state.sample is sample and state.entry == entry and state.selected_index() == entry.index
    expressive = np.asarray(tiny_data.vertices[entry.index])
    np.testing.assert_allclose(sample.predicted, tiny_model.neutralise(np.array(expressive)), atol=1e-5)
    np.testing.assert_array_equal(state.triangles, tiny_model.triangles)
    inputs, predicted, truth = state.panels(STYLE)
    np.testing.assert_array_equal(inputs.vertices, expressive)
    np.testing.assert_array_equal(predicted.vertices, sample.predicted)
    np.testing.assert_array_equal(truth.vertices, tiny_data.vertices[entry.neutral])
    assert "mean" in inputs.subtitle              # the input's distance to the truth
    assert entry.label in state.readout() and "error mean" in state.readout()
    shown = state.identity()
    assert shown.top5 == sample.top5 and shown.gallery_size > 0 and shown.subject == entry.subject
    assert [m.subject for m in shown.matches] == [m.subject for m in state.session.matches(sample, k=5)[0]]


def test_panels_say_what_is_missing(tmp_path, tiny_model, tiny_data):
    state = AppState()
    inputs, _, _ = state.panels(STYLE)
    assert inputs.vertices is None and inputs.note == NO_SAMPLE_NOTE
    assert state.readout() == "No sample on show."
    state.set_loading("Loading the model ...")
    assert state.panels(STYLE)[0].note == "Loading the model ..."
    state.set_loading(None)

    # A dataset without a model: the input and its truth, no prediction.
    state.set_dataset(tiny_data)
    entry = state.session.first_entry()
    state.show_entry(entry)
    inputs, predicted, truth = state.panels(STYLE)
    assert inputs.vertices is not None and truth.vertices is not None
    assert predicted.vertices is None and predicted.note == NO_MODEL_NOTE
    assert "no model: no prediction" in state.readout()
    assert state.identity().top5 is None and "Open a model" in state.identity().note

    # A mesh from a file with a model: its prediction, no ground truth until one is opened.
    state.set_model(tiny_model)
    path = _write(tmp_path, "input.ply", tiny_data.vertices[entry.index], tiny_data.triangles)
    state.open_mesh(path)
    assert state.entry is None
    inputs, predicted, truth = state.panels(STYLE)
    assert predicted.vertices is not None
    assert truth.vertices is None and truth.note == NO_TRUTH_NOTE
    assert "no ground truth: no error" in state.readout()
    truth_path = _write(tmp_path, "truth.ply", tiny_data.vertices[entry.neutral], tiny_data.triangles)
    sample = state.open_ground_truth(truth_path)
    np.testing.assert_allclose(state.panels(STYLE)[2].vertices, read_mesh(truth_path).vertices)
    np.testing.assert_allclose(sample.error, per_vertex_error(sample.predicted, sample.truth), atol=1e-5)


def test_a_ground_truth_needs_an_input_of_its_template(tmp_path, tiny_data):
    state = AppState()
    truth_path = _write(tmp_path, "truth.ply", tiny_data.vertices[0], tiny_data.triangles)
    with pytest.raises(FacelabError, match="open an expressive mesh first"):
        state.open_ground_truth(truth_path)
    state.open_mesh(_write(tmp_path, "input.ply", tiny_data.vertices[1], tiny_data.triangles))
    before = state.sample
    with pytest.raises(TopologyMismatchError):
        state.open_ground_truth(_small_template_mesh(tmp_path))
    assert state.sample is before and state.sample.truth is None


def test_a_refused_model_is_rolled_back(tmp_path, tiny_model, tiny_data):
    # The meshes on show do not fit the model: the previous one (none) is back, the sample unchanged.
    state = AppState()
    sample = state.open_mesh(_small_template_mesh(tmp_path))
    with pytest.raises(TopologyMismatchError):
        state.set_model(tiny_model)
    assert state.model is None and state.sample is sample and sample.predicted is None

    # Rolling back to a model lists the split for it again.
    state = AppState()
    state.set_model(tiny_model)
    state.set_dataset(tiny_data)
    listed = list(state.session.entries)
    assert {e.subject for e in listed if e.part == "test"}.isdisjoint(tiny_model.training_subjects)
    state.set_model(None)
    assert state.model is None
    state.roll_back_model(tiny_model)
    assert state.model is tiny_model and state.session.entries == listed
    state.reshow()
    assert state.sample is None


def test_a_new_model_keeps_the_entry_on_show(tiny_model, tiny_data):
    state = AppState()
    state.set_dataset(tiny_data)
    entry = state.session.first_entry()
    state.show_entry(entry)
    assert state.sample.predicted is None
    state.set_model(tiny_model)
    assert state.entry is not None and state.entry.index == entry.index
    state.reshow()
    np.testing.assert_allclose(state.sample.predicted,
                               tiny_model.neutralise(np.array(tiny_data.vertices[entry.index])), atol=1e-5)


def test_listeners_hear_what_changes_on_show(tiny_model, tiny_data):
    state = AppState()
    heard = Heard(state)
    state.set_model(tiny_model)
    state.set_dataset(tiny_data)
    assert heard.sample == [] and heard.views == []      # nothing is on show until an entry is chosen
    entry = state.session.first_entry()
    sample = state.show_entry(entry)
    assert heard.sample == [sample]

    # A gallery subject's neutral on the right: only the views change, the sample stays.
    subject = state.identity().matches[-1].subject
    index = state.session.neutral_of(subject)
    assert state.show_gallery_subject(subject, index)
    assert len(heard.views) == 1 and heard.sample == [sample]
    right = state.panels(STYLE)[2]
    assert right.title == f"Gallery: {subject} (neutral)"
    np.testing.assert_array_equal(right.vertices, tiny_data.vertices[index])
    assert state.identity().chosen == subject
    assert not state.show_training_subject("nobody")
    state.show_entry(entry)
    assert state.gallery_choice is None and len(heard.sample) == 2

    # A training preview of the sample on show marks only the prediction as the run's.
    error = per_vertex_error(sample.expressive, sample.truth)
    state.show_preview(Preview(7, 0, sample.expressive, sample.truth, sample.truth, error))
    assert len(heard.views) == 2
    titles = [panel.title for panel in state.panels(STYLE)]
    assert "step 7" in titles[1] and "step 7" not in titles[0] + titles[2]
    assert "Training preview" in state.readout()
    state.end_preview()
    state.end_preview()                                  # no preview: nothing to tell
    assert len(heard.views) == 3 and state.preview is None

    # Another dataset keeping a file's mesh tells the identity panel (its gallery changed).
    state.set_dataset(tiny_data, keep_sample=True)
    assert heard.identity == [True]
    state.show_nothing()
    assert state.sample is None and len(heard.views) == 4 and len(heard.identity) == 2
    late = state.events.views.connect(lambda: heard.views.append("late"))
    state.set_loading("x")
    state.events.views.disconnect(late)
    state.set_loading(None)
    assert heard.views[4:] == [True, "late", True]


def test_dropped_paths_open_checkpoints_then_datasets_then_meshes(tmp_path, tiny_data):
    mesh = _write(tmp_path, "a.ply", tiny_data.vertices[0], tiny_data.triangles)
    run = tiny_root() / "run"
    data = tiny_root() / "data"
    assert files.opening_order([mesh, str(data), str(run)]) == [
        (files.CHECKPOINT, str(run)), (files.DATASET, str(data)), (files.MESH, mesh)]
    with pytest.raises(FacelabError, match="does not exist"):
        files.opening_order([mesh, str(tmp_path / "missing.ply")])


def test_exports_write_what_is_on_show(tmp_path, tiny_model, tiny_data):
    state = AppState()
    with pytest.raises(FacelabError, match="no sample on show"):
        state.export_mesh(tmp_path / "x.ply")
    state.set_model(tiny_model)
    state.set_dataset(tiny_data)
    state.show_entry(state.session.first_entry())
    written = read_mesh(state.export_mesh(tmp_path / "p.ply"))
    np.testing.assert_allclose(written.vertices, state.sample.predicted, atol=1e-5)
    assert state.export_stats(tmp_path / "s.json").is_file()


def test_listed_samples_are_predicted_from_the_one_on_show_outward(tiny_data):
    state = AppState()
    state.set_dataset(tiny_data)
    listed = state.session.entries
    assert state.nearest_first(listed) == listed          # nothing on show: from the top
    state.show_entry(listed[3])
    order = state.nearest_first(listed)
    assert order[0] == listed[3] and set(order[1:3]) == {listed[2], listed[4]}
    assert sorted(order, key=listed.index) == listed


def test_a_mesh_of_another_template_says_which_template_the_model_fits_and_what_to_do(tmp_path, tiny_model,
                                                                                      tiny_data):
    state = AppState()
    state.set_model(tiny_model)
    state.set_dataset(tiny_data)
    before = state.show_entry(state.session.first_entry(None))
    with pytest.raises(TopologyMismatchError) as refused:
        state.open_mesh(_small_template_mesh(tmp_path))
    message = str(refused.value)
    assert "small.ply is not registered to the template the model " in message
    assert "expected 162 vertices" in message and "got 100" in message
    assert "open a checkpoint trained on them" in message and "train a model on it" in message
    assert "\n" not in message
    assert state.sample is before


def test_a_chosen_subjects_neutral_joins_an_input_the_model_re_posed(tmp_path, tiny_model, tiny_data):
    from scipy.spatial.transform import Rotation

    state = AppState()
    state.set_model(tiny_model)
    state.set_dataset(tiny_data)
    entry = state.session.first_entry("test")
    index = state.session.neutral_of(entry.subject)
    neutral = np.asarray(tiny_data.vertices[index])
    state.show_entry(entry)                          # a face in the dataset's own pose: shown as it is
    assert state.show_gallery_subject(entry.subject, index)
    np.testing.assert_array_equal(state.panels(STYLE)[2].vertices, neutral)
    assert "re-posed" not in state.panels(STYLE)[2].subtitle

    # The same input turned 20 degrees and moved 30 mm: the model re-poses it, the chosen face follows.
    rotation = Rotation.from_euler("y", 20, degrees=True).as_matrix()
    moved = np.asarray(tiny_data.vertices[entry.index]) @ rotation.T + np.array([30.0, 0.0, 0.0])
    state.open_mesh(_write(tmp_path, "moved.ply", moved, tiny_data.triangles))
    assert state.session.reposing(state.sample) is not None
    assert state.show_gallery_subject(entry.subject, index)
    right = state.panels(STYLE)[2]
    assert right.title.endswith(f"{entry.subject} (neutral)") and right.subtitle == "re-posed like the input"
    # It lies where the input lies, within the subject's own expression change, not 30 mm away.
    assert per_vertex_error(right.vertices, neutral @ rotation.T + np.array([30.0, 0.0, 0.0])).mean() < 1.0
    # Another model (its own alignment): the right view goes back to the ground truth.
    state.set_model(tiny_model)
    state.reshow()
    assert state.gallery_choice is None and "re-posed" not in state.panels(STYLE)[2].subtitle


def test_the_status_line_counts_the_models_training_and_validation_subjects_apart(tiny_model):
    from facelab.app.state import model_summary

    line = model_summary(tiny_model, "tiny")
    fit, validation = len(tiny_model.subjects), len(tiny_model.meta["split"]["validation"])
    assert validation and f"{fit} training subjects + {validation} validation" in line
