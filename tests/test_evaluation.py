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
