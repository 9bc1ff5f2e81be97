"""Metrics on hand-built cases, the linear baseline, and the evaluate contract."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.evaluation import error_summary, per_vertex_error, rank_k_identification
from facelab.evaluation.baselines import LinearNeutraliser


def test_per_vertex_error_is_euclidean():
    predicted = np.array([[[0, 0, 0], [1, 1, 1]]], dtype=np.float32)
    truth = np.array([[[3, 4, 0], [1, 1, 1]]], dtype=np.float32)
    np.testing.assert_allclose(per_vertex_error(predicted, truth), [[5.0, 0.0]])
    summary = error_summary(per_vertex_error(predicted, truth))
    assert summary == {"mean_error_mm": 2.5, "std_error_mm": 2.5, "median_error_mm": 2.5, "max_error_mm": 5.0}


def test_rank_k_on_a_hand_built_gallery():
    gallery = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    labels = ["a", "b", "c"]
    probes = np.array([
        [0.9, 0.1, 0.0],   # a: rank 1
        [0.6, 0.5, 0.0],   # b: a is closer -> rank 2
        [0.5, 0.4, 0.3],   # c: rank 3
        [0.0, 0.0, 2.0],   # c: rank 1 (scale does not matter for cosine)
    ])
    ranks = rank_k_identification(probes, ["a", "b", "c", "c"], gallery, labels, ks=(1, 2, 3))
    assert ranks == {1: 0.5, 2: 0.75, 3: 1.0}


def test_rank_k_ties_count_against_the_probe():
    gallery = np.array([[1, 0], [1, 0]], dtype=float)
    assert rank_k_identification(np.array([[1.0, 0.0]]), ["a"], gallery, ["a", "b"], ks=(1, 2)) == {1: 0.0, 2: 1.0}


def test_rank_k_uses_the_best_of_several_gallery_entries():
    gallery = np.array([[1, 0], [0, 1], [0.7, 0.7]], dtype=float)
    ranks = rank_k_identification(np.array([[0.0, 1.0]]), ["a"], gallery, ["a", "a", "b"], ks=(1,))
    assert ranks == {1: 1.0}


def test_rank_k_needs_every_probe_identity_in_the_gallery():
    with pytest.raises(ValueError, match="missing from the gallery"):
        rank_k_identification(np.ones((1, 2)), ["z"], np.ones((1, 2)), ["a"])


def test_linear_baseline_undoes_a_linear_expression_model():
    from facelab.data import FaceDataset, MeshRecord

    rng = np.random.default_rng(0)
    n = 40
    identity_modes = rng.normal(size=(6, n, 3))
    expression_modes = rng.normal(size=(3, n, 3))
    records, vertices = [], []
    for s in range(20):
        neutral = np.tensordot(rng.normal(size=6), identity_modes, axes=1)
        records.append(MeshRecord(f"s{s}", "neutral"))
        vertices.append(neutral)
        for e in range(3):
            records.append(MeshRecord(f"s{s}", f"e{e}"))
            vertices.append(neutral + rng.uniform(0.5, 1.5) * expression_modes[e])
    dataset = FaceDataset("linear", "generic", np.asarray(vertices, np.float32), np.array([[0, 1, 2]]), records)
    split = dataset.split()
    model = LinearNeutraliser.fit(dataset, dataset.pairs_of(split.train_subjects))
    test = dataset.pairs_of(split.test_subjects)
    predicted = model.neutralise(dataset.vertices[[p.expressive for p in test]])
    error = per_vertex_error(predicted, dataset.vertices[[p.neutral for p in test]]).mean()
    do_nothing = per_vertex_error(dataset.vertices[[p.expressive for p in test]], dataset.vertices[[p.neutral for p in test]]).mean()
    assert error < 0.05 * do_nothing


def _random_pairs_dataset(subjects: int, expressions: int, n: int, rank: int | None = None):
    from facelab.data import FaceDataset, MeshRecord

    rng = np.random.default_rng(1)
    count = subjects * (expressions + 1)
    if rank is None:
        vertices = rng.normal(size=(count, n, 3))
    else:  # every face in a rank-dimensional affine subspace
        vertices = 5.0 + (rng.normal(size=(count, rank)) @ rng.normal(size=(rank, n * 3))).reshape(count, n, 3)
    records = [MeshRecord(f"s{s}", "neutral" if e == 0 else f"e{e}") for s in range(subjects) for e in range(expressions + 1)]
    return FaceDataset("random", "generic", vertices.astype(np.float32), np.array([[0, 1, 2]]), records)


def _reference_ridge(dataset, pairs, components: int, alpha: float):
    """The linear baseline's definition, in memory: PCA of all expressive faces, ridge on its coefficients."""
    x_e = np.asarray(dataset.vertices[[p.expressive for p in pairs]], np.float64).reshape(len(pairs), -1)
    x_n = np.asarray(dataset.vertices[[p.neutral for p in pairs]], np.float64).reshape(len(pairs), -1)
    _, singular, vt = np.linalg.svd(x_e - x_e.mean(0), full_matrices=False)
    basis = vt[:components]
    c = (x_e - x_e.mean(0)) @ basis.T
    weights = np.linalg.solve(c.T @ c + alpha * singular[0] ** 2 * np.eye(len(basis)), c.T @ (x_n - x_n.mean(0)))
    return lambda faces: x_n.mean(0) + ((faces.reshape(len(faces), -1) - x_e.mean(0)) @ basis.T) @ weights


def test_linear_baseline_read_in_chunks_equals_the_in_memory_fit(monkeypatch):
    """The fit reads faces in blocks (here of 7) and sums; the result is the plain ridge regression."""
    import facelab.evaluation.baselines as baselines

    monkeypatch.setattr(baselines, "_CHUNK", 7)
    dataset = _random_pairs_dataset(subjects=12, expressions=5, n=30)
    pairs = dataset.pairs_of(sorted({r.subject for r in dataset.records}))
    model = LinearNeutraliser.fit(dataset, pairs, components=20, alphas=(1e-2,))
    probes = np.asarray(dataset.vertices[:9], np.float64)
    expected = _reference_ridge(dataset, pairs, components=20, alpha=1e-2)(probes)
    np.testing.assert_allclose(model.predict(probes.reshape(9, -1)), expected, rtol=1e-7, atol=1e-7)


def test_linear_baseline_basis_from_a_sample_spans_low_rank_faces():
    """With more pairs than ``basis_samples`` the basis comes from a sample; when the sample spans
    the faces (here rank 6), the fit is still the exact one."""
    dataset = _random_pairs_dataset(subjects=12, expressions=5, n=30, rank=6)
    pairs = dataset.pairs_of(sorted({r.subject for r in dataset.records}))
    model = LinearNeutraliser.fit(dataset, pairs, components=20, alphas=(1e-3,), basis_samples=15)
    assert model.components.shape[0] <= 6  # directions of zero variance are dropped
    probes = np.asarray(dataset.vertices[:9], np.float64)
    expected = _reference_ridge(dataset, pairs, components=6, alpha=1e-3)(probes)
    np.testing.assert_allclose(model.predict(probes.reshape(9, -1)), expected, rtol=1e-6, atol=1e-6)


def test_split_baselines_measure_the_test_pairs_of_the_split():
    from facelab.evaluation.evaluate import split_baselines

    dataset = _random_pairs_dataset(subjects=10, expressions=3, n=30)
    split = dataset.split()
    baselines = split_baselines(dataset, split)
    test = dataset.pairs_of(split.test_subjects)
    do_nothing = per_vertex_error(dataset.vertices[[p.expressive for p in test]], dataset.vertices[[p.neutral for p in test]])
    assert baselines["do_nothing"]["mean_error_mm"] == pytest.approx(float(do_nothing.mean()))
    assert 0 <= baselines["linear"]["rank1"] <= baselines["linear"]["rank5"] <= 1


def test_blended_pairs_add_two_expressions_of_one_subject_to_its_neutral_face(monkeypatch):
    from facelab.evaluation import evaluate

    dataset = _random_pairs_dataset(subjects=4, expressions=3, n=30)
    pairs = dataset.pairs_of(dataset.subjects)
    inputs, truth = evaluate.blended_pairs(dataset, pairs)
    assert inputs.shape == truth.shape == (len(pairs), 30, 3)
    vertices = np.asarray(dataset.vertices, dtype=np.float32)
    by_face = {(p.subject, p.expression): vertices[p.expressive] for p in pairs}
    for face, neutral, pair in zip(inputs, truth, pairs):
        np.testing.assert_array_equal(neutral, vertices[pair.neutral])
        other = face - by_face[pair.subject, pair.expression] + neutral   # the second expression's face
        labels = [e for (s, e), f in by_face.items() if s == pair.subject and np.allclose(f, other, atol=1e-4)]
        assert labels and pair.expression not in labels
    again, _ = evaluate.blended_pairs(dataset, pairs)
    np.testing.assert_array_equal(again, inputs)                        # seeded
    monkeypatch.setattr(evaluate, "BLENDED_MAX", 5)
    assert len(evaluate.blended_pairs(dataset, pairs)[0]) == 5
    one_label = [p for p in pairs if p.expression == pairs[0].expression]
    assert len(evaluate.blended_pairs(dataset, one_label)[0]) == 0     # nothing to blend with


def test_expression_recognition_counts_only_the_labels_the_model_knows():
    from facelab.evaluation.metrics import expression_recognition

    expressions = ("smile", "frown", "neutral")
    probabilities = np.array([[0.7, 0.2, 0.1],    # smile, read as smile
                              [0.5, 0.4, 0.1],    # frown, second
                              [0.1, 0.1, 0.8],    # neutral, read as neutral
                              [0.96, 0.02, 0.02]])  # a label the model never learned: not counted
    labels = ["smile", "frown", "neutral", "yawn"]
    result = expression_recognition(labels, expressions, probabilities)
    assert result == {"pairs": 3, "accuracy": 2 / 3, "top3_accuracy": 1.0}
    # with each face's error: the faces read right and wrong, and every face by its reading's confidence
    result = expression_recognition(labels, expressions, probabilities, np.array([0.1, 0.5, 0.2, 0.9]))
    assert (result["error_read_right_mm"], result["error_read_wrong_mm"]) == pytest.approx((0.15, 0.5))
    bands = {(band["from"], band["to"]): (band["share"], band["mean_error_mm"]) for band in result["by_confidence"]}
    assert bands[(0.5, 0.8)] == pytest.approx((0.5, 0.3))        # 0.7 and 0.5: a band holds its lower end
    assert bands[(0.8, 0.95)] == pytest.approx((0.25, 0.2))
    assert bands[(0.95, 1.0)] == pytest.approx((0.25, 0.9))
    assert bands[(0.0, 0.5)][0] == 0 and np.isnan(bands[(0.0, 0.5)][1])
    none = expression_recognition(["yawn"], expressions, probabilities[:1])
    assert none["pairs"] == 0 and np.isnan(none["accuracy"])
    # with errors but no known label: the same keys, not a number where nothing was read
    none = expression_recognition(["yawn"], expressions, probabilities[:1], np.array([0.3]))
    assert none["pairs"] == 0 and np.isnan(none["error_read_right_mm"]) and np.isnan(none["error_read_wrong_mm"])
    assert none["by_confidence"][1]["share"] == 1.0     # its one face, read at p 0.7
