"""The app's Qt-free logic: samples, the session, gallery identification, files and export."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from facelab.app import files
from facelab.app.export import export_predicted_mesh, export_statistics
from facelab.app.identity import Gallery
from facelab.evaluation.sample import compute_sample
from facelab.app.session import Session
from facelab.errors import FacelabError, TopologyMismatchError
from facelab.evaluation.metrics import cosine_similarity, error_summary, per_vertex_error, rank_k_identification
from facelab.mesh import read_mesh, read_ply_vertex_property
from tests.conftest import make_tiny_dataset
from tests.test_app_fixtures import tiny_data, tiny_model, tiny_root  # noqa: F401  (fixtures)


def test_app_logic_imports_no_qt():
    code = ("import sys, facelab.app, facelab.evaluation.sample, facelab.app.session, facelab.app.identity, "
            "facelab.app.files, facelab.app.export, facelab.app.startup, facelab.render; "
            "assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyvistaqt', 'pyqtgraph'))]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_start_reads_its_data_without_torch(tiny_data):
    """``facelab gui`` draws the first sample before torch is imported: reading a dataset imports
    neither torch nor SynthFaces' generator (naming its cache only reads the generator's sources)."""
    code = f"""
import sys
from facelab.app.startup import read_data
from facelab.data.synth_dataset import synthfaces_cache_path
read = read_data({str(tiny_root() / "data")!r})
assert read.dataset is not None and read.error is None, read
synthfaces_cache_path()
late = [name for name in ("torch", "facelab.data.synth", "scipy.spatial") if name in sys.modules]
assert not late, late
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_sample_is_what_the_core_computes(tiny_model, tiny_data):
    pair = tiny_data.pairs[-1]
    expressive, truth = np.asarray(tiny_data.vertices[pair.expressive]), np.asarray(tiny_data.vertices[pair.neutral])
    sample = compute_sample(tiny_model, expressive, truth, label="x")
    predicted = tiny_model.neutralise(np.array(expressive))
    np.testing.assert_allclose(sample.predicted, predicted, atol=1e-5)
    np.testing.assert_allclose(sample.error, per_vertex_error(predicted, truth), atol=1e-5)
    assert sample.stats == pytest.approx(error_summary(per_vertex_error(predicted, truth)), rel=1e-5)
    assert sample.top5 == tiny_model.top_subjects(np.array(expressive), k=5)
    np.testing.assert_allclose(sample.displacement, per_vertex_error(expressive, truth), atol=1e-5)
    bare = compute_sample(None, expressive, None)
    assert bare.predicted is None and bare.error is None and bare.stats is None and bare.displacement is None


def test_session_lists_samples_with_their_split(tiny_model, tiny_data):
    session = Session()
    session.set_model(tiny_model)
    session.set_dataset(tiny_data)
    split = tiny_data.split()
    assert len(session.entries) == sum(not r.is_neutral for r in tiny_data.records)
    for entry in session.entries:
        assert entry.part == ("test" if entry.subject in split.test_subjects else "train")
        assert tiny_data.records[entry.neutral].is_neutral and tiny_data.records[entry.neutral].subject == entry.subject
    first = session.first_entry("test")
    assert first.part == "test" and first.neutral is not None
    assert session.sample(first) is session.sample(first)       # cached


def test_samples_predicted_in_a_batch_are_what_the_core_computes_for_each(tiny_model, tiny_data):
    """The app predicts the listed samples in batches (in a worker thread): each sample it then
    shows is the one compute_sample makes of that face alone."""
    from facelab.app.session import predict_entries, reposing

    session = Session()
    session.set_model(tiny_model)
    session.set_dataset(tiny_data)
    listed = session.entries_of("test")
    assert session.unpredicted(listed) == listed
    predictions = predict_entries(tiny_model, tiny_data, listed)
    assert session.keep_predictions(predictions, tiny_model, tiny_data)
    assert not session.unpredicted(listed)
    assert not session.keep_predictions({}, tiny_model, make_tiny_dataset(subjects=3)), "only for the open dataset"
    for entry in listed[:4]:
        sample = session.sample(entry)
        expected = compute_sample(tiny_model, tiny_data.vertices[entry.index], tiny_data.vertices[entry.neutral])
        np.testing.assert_allclose(sample.predicted, expected.predicted, atol=1e-4)
        np.testing.assert_allclose(sample.error, expected.error, atol=1e-4)
        np.testing.assert_allclose(sample.embedding, expected.embedding, atol=1e-4)
        assert [s for s, _p in sample.top5] == [s for s, _p in expected.top5]
        alone, batched = reposing(tiny_model, sample.expressive), predictions[entry.index].reposing
        assert (alone is None) == (batched is None)
        if alone is not None:
            assert (batched.degrees, batched.shift_mm, batched.scale) == pytest.approx(
                (alone.degrees, alone.shift_mm, alone.scale), abs=1e-3)


def test_the_reposing_of_a_mirrored_input_says_mirrored_and_counts_only_the_turn(tiny_model, tiny_data):
    from facelab.app.session import reposing

    face = np.asarray(tiny_data.vertices[0])
    assert reposing(tiny_model, face).moves() == []
    mirrored = reposing(tiny_model, face * np.array([-1.0, 1.0, 1.0], np.float32))
    assert mirrored.mirrored and mirrored.degrees < 1.0
    assert mirrored.sentence.endswith("mirrored (its coordinates have the other handedness).")


def test_session_refuses_a_model_of_another_template(tiny_model):
    other = make_tiny_dataset(subjects=3)
    small = type(other)("small", "generic", other.vertices[:, :100], other.triangles[other.triangles.max(axis=1) < 100],
                        other.records)
    session = Session()
    session.set_model(tiny_model)
    with pytest.raises(TopologyMismatchError, match="expects 162 vertices"):
        session.set_dataset(small)
    assert session.dataset is None and session.model is tiny_model
    session.set_dataset(small, keep_model=False)
    assert session.model is None and session.dataset is small


def test_gallery_ranks_agree_with_the_evaluation_protocol(tiny_model, tiny_data):
    split = tiny_data.split()
    gallery = Gallery(tiny_model, tiny_data, split.test_subjects)
    probes = tiny_data.pairs_of(split.test_subjects)
    embeddings = tiny_model.identity_embedding(np.array(tiny_data.vertices[[p.expressive for p in probes]]))
    ranks = [gallery.rank_of(e, p.subject) for e, p in zip(embeddings, probes)]
    expected = rank_k_identification(embeddings, [p.subject for p in probes], gallery.embeddings,
                                     list(gallery.labels), ks=(1, 2))
    assert np.mean(np.array(ranks) <= 1) == pytest.approx(expected[1])
    assert np.mean(np.array(ranks) <= 2) == pytest.approx(expected[2])
    matches = gallery.matches(embeddings[0], k=5)
    similarity = cosine_similarity(embeddings[:1], gallery.embeddings)[0]
    assert len(matches) == len(split.test_subjects) == len(gallery)
    assert [m.score for m in matches] == pytest.approx(sorted(similarity, reverse=True))
    assert [m.rank for m in matches] == list(range(1, len(matches) + 1))
    assert [m.subject for m in gallery.matches(embeddings[0], k=1)] == [matches[0].subject]


def test_classify_paths(tmp_path, tiny_model):
    run = tiny_root() / "run"
    assert files.classify(run) == files.CHECKPOINT
    assert files.classify(run / "best.json") == files.CHECKPOINT
    assert files.classify(run / "best.safetensors") == files.CHECKPOINT
    assert files.classify(tiny_root() / "data") == files.DATASET
    assert files.classify(tiny_root() / "data" / "manifest.csv") == files.DATASET
    assert files.dataset_source(tiny_root() / "data" / "manifest.csv") == tiny_root() / "data"
    assert files.classify(tiny_root() / "data" / "p00" / "neutral.ply") == files.MESH
    (tmp_path / "model.npz").write_bytes(b"")
    assert files.classify(tmp_path / "model.npz") == files.DATASET
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FacelabError, match="not something facelab opens"):
        files.classify(tmp_path / "notes.txt")
    with pytest.raises(FacelabError, match="does not exist"):
        files.classify(tmp_path / "missing.ply")


def test_recent_files_are_unique_and_bounded(tmp_path):
    recent = []
    for i in range(15):
        recent = files.add_recent(recent, files.MESH, tmp_path / f"m{i}.ply")
    recent = files.add_recent(recent, files.MESH, tmp_path / "m3.ply")
    assert len(recent) == files.RECENT_LIMIT and recent[0].path.endswith("m3.ply")
    assert len({r.path for r in recent}) == len(recent)
    assert files.recent_from_json(files.recent_to_json(recent)) == recent
    assert files.recent_from_json("not json") == []


def test_export_mesh_and_statistics(tmp_path, tiny_model, tiny_data):
    pair = tiny_data.pairs[0]
    sample = compute_sample(tiny_model, tiny_data.vertices[pair.expressive], tiny_data.vertices[pair.neutral], label="s")
    export_predicted_mesh(sample, tiny_model.triangles, tmp_path / "p.ply")
    np.testing.assert_allclose(read_ply_vertex_property(tmp_path / "p.ply", "error"), sample.error, atol=1e-6)
    np.testing.assert_allclose(read_mesh(tmp_path / "p.ply").vertices, sample.predicted, atol=1e-5)
    export_predicted_mesh(sample, tiny_model.triangles, tmp_path / "p.obj")      # no error property in OBJ
    assert read_mesh(tmp_path / "p.obj").n_vertices == 162
    export_statistics(sample, tmp_path / "s.json")
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["mean_error_mm"] == pytest.approx(float(sample.error.mean()), rel=1e-6)
    assert [s for s, _ in stats["top5"]] == [s for s, _ in sample.top5]
    with pytest.raises(FacelabError, match=r"\.csv or \.json"):
        export_statistics(sample, tmp_path / "s.txt")
    no_truth = compute_sample(tiny_model, tiny_data.vertices[pair.expressive])
    with pytest.raises(FacelabError, match="ground truth"):
        export_statistics(no_truth, tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()
    with pytest.raises(FacelabError, match="no prediction"):
        export_predicted_mesh(compute_sample(None, tiny_data.vertices[0]), tiny_model.triangles, tmp_path / "n.ply")


def test_a_subject_the_model_trained_on_is_never_labelled_test(tiny_model):
    # The same subjects and more: the larger set's split puts some of the model's training subjects
    # in its test part; the app moves them to training, and evaluate leaves them out.
    from facelab.evaluation.evaluate import evaluate_model

    larger = make_tiny_dataset(subjects=12)
    split = larger.split()
    seen = tiny_model.training_subjects
    assert set(split.test_subjects) & seen  # the situation this guards against
    session = Session()
    session.set_model(tiny_model)
    session.set_dataset(larger)
    assert {entry.subject for entry in session.entries if entry.part == "test"}.isdisjoint(seen)
    report = evaluate_model(tiny_model, larger, split, baselines=False, robustness=False)
    assert report["excluded_training_subjects"] == sorted(set(split.test_subjects) & seen)
    assert report["test_subjects"] == len(set(split.test_subjects) - seen)
