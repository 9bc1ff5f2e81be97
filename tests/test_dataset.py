"""Pairs, cross-subject splits and training statistics of a FaceDataset."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.data import FaceDataset, MeshRecord
from facelab.errors import DatasetError
from facelab.mesh.validation import triangles_hash


def _dataset(subjects=("a", "b", "c", "d", "e"), expressions=("smile", "frown"), n=4, seed=0):
    rng = np.random.default_rng(seed)
    records, vertices = [], []
    for subject in subjects:
        for expression in ("neutral", *expressions):
            records.append(MeshRecord(subject, expression))
            vertices.append(rng.normal(size=(n, 3)))
    return FaceDataset("toy", "generic", np.array(vertices, dtype=np.float32), np.array([[0, 1, 2], [1, 2, 3]]), records)


def test_every_expressive_mesh_is_paired_with_its_subjects_neutral():
    dataset = _dataset()
    assert len(dataset.pairs) == 10
    for pair in dataset.pairs:
        assert dataset.records[pair.neutral].is_neutral
        assert dataset.records[pair.neutral].subject == dataset.records[pair.expressive].subject == pair.subject
        assert dataset.records[pair.expressive].expression == pair.expression != "neutral"


def test_groups_pair_with_their_own_neutral():
    records = [MeshRecord("s", "neutral", group="seq1"), MeshRecord("s", "seq1", group="seq1"),
               MeshRecord("s", "neutral", group="seq2"), MeshRecord("s", "seq2", group="seq2")]
    dataset = FaceDataset("coma-like", "coma", np.zeros((4, 3, 3), np.float32), np.array([[0, 1, 2]]), records)
    assert [(p.expressive, p.neutral) for p in dataset.pairs] == [(1, 0), (3, 2)]


def test_expressive_meshes_without_a_neutral_are_not_paired():
    records = [MeshRecord("s", "smile"), MeshRecord("t", "neutral"), MeshRecord("t", "smile")]
    dataset = FaceDataset("x", "generic", np.zeros((3, 3, 3), np.float32), np.array([[0, 1, 2]]), records)
    assert [(p.expressive, p.neutral) for p in dataset.pairs] == [(2, 1)]


def test_split_is_cross_subject_seeded_and_70_30():
    dataset = _dataset(subjects=[f"s{i:02d}" for i in range(10)])
    split = dataset.split()
    assert len(split.train_subjects) == 7 and len(split.test_subjects) == 3
    assert not set(split.train_subjects) & set(split.test_subjects)
    assert set(split.train_subjects) | set(split.test_subjects) == set(dataset.subjects)
    assert dataset.split(seed=0) == split
    assert any(dataset.split(seed=s).test_subjects != split.test_subjects for s in range(1, 6))


def test_split_does_not_depend_on_record_order():
    dataset = _dataset(subjects=[f"s{i}" for i in range(8)])
    order = np.random.default_rng(1).permutation(len(dataset))
    shuffled = FaceDataset("toy", "generic", dataset.vertices[order], dataset.triangles, [dataset.records[i] for i in order])
    assert shuffled.split(seed=3) == dataset.split(seed=3)


def test_split_needs_two_subjects():
    with pytest.raises(DatasetError, match="at least 2"):
        _dataset(subjects=("only",)).split()


def test_normalisation_uses_the_training_split_only():
    dataset = _dataset(subjects=[f"s{i}" for i in range(6)])
    split = dataset.split()
    stats = dataset.normalisation(split)
    train = dataset.vertices[dataset.indices_of(split.train_subjects)]
    np.testing.assert_allclose(stats.mean, train.mean(axis=0), rtol=1e-5, atol=1e-6)
    floor = 0.1 * np.median(train.std(axis=0))
    np.testing.assert_allclose(stats.std, np.maximum(train.std(axis=0), floor), rtol=1e-4, atol=1e-6)
    everything = dataset.vertices.mean(axis=0)
    assert not np.allclose(stats.mean, everything)
    np.testing.assert_allclose(stats.denormalise(stats.normalise(dataset.vertices[0])), dataset.vertices[0], atol=1e-5)


def test_constant_vertices_get_a_floor_on_their_std():
    dataset = _dataset(subjects=("a", "b", "c"))
    dataset.vertices[:, 0, :] = 5.0
    stats = dataset.normalisation(dataset.split())
    assert np.all(stats.std[0] >= 0.1 * np.median(stats.std) * 0.999)
    assert np.isfinite(stats.normalise(dataset.vertices[0])).all()


def test_summary_counts():
    info = _dataset().summary()
    assert info["subjects"] == 5 and info["meshes"] == 15 and info["pairs"] == 10 and info["expressions"] == 2
    assert info["split"]["train_subjects"] + info["split"]["test_subjects"] == 5


def test_subjects_outside_the_split_pool_always_train():
    pool = [f"s{i}" for i in range(10)]
    small = _dataset(subjects=pool)
    large = _dataset(subjects=pool + [f"x{i}" for i in range(30)])
    large.split_pool = tuple(pool)
    assert large.split(seed=4).test_subjects == small.split(seed=4).test_subjects
    assert set(large.split(seed=4).train_subjects) == set(large.subjects) - set(small.split(seed=4).test_subjects)


def test_a_larger_synthfaces_keeps_the_default_test_subjects():
    from facelab.data.synth_dataset import load_synthfaces

    default, larger = load_synthfaces(identities=100), load_synthfaces(identities=103)
    assert larger.split().test_subjects == default.split().test_subjects
    assert {"synth_100", "synth_101", "synth_102"} <= set(larger.split().train_subjects)


def test_topology_hash_is_computed_once_per_triangles_array(monkeypatch):
    from facelab.data import dataset as dataset_module

    calls = []
    monkeypatch.setattr(dataset_module, "triangles_hash", lambda t: calls.append(len(t)) or triangles_hash(t))
    dataset = _dataset()
    kept = dataset.topology_hash
    assert dataset.topology_hash == dataset.topology_hash == kept == triangles_hash(dataset.triangles)
    assert calls == [2]
    dataset.triangles = dataset.triangles[:-1]
    assert dataset.topology_hash == triangles_hash(dataset.triangles) != kept
    assert calls == [2, 1]


def test_a_per_subject_split_keeps_each_subject_on_its_side_whatever_the_count():
    from facelab.data import FaceDataset

    def dataset(count):
        records = [MeshRecord(f"ict_{i:03d}", "neutral") for i in range(count)]
        return FaceDataset("sampled", "ict-facekit", np.zeros((count, 3, 3), np.float32), np.array([[0, 1, 2]]),
                           records, split_per_subject=True)

    small, large = dataset(20).split(), dataset(400).split()
    assert set(small.test_subjects) <= set(large.test_subjects)
    assert set(small.train_subjects) <= set(large.train_subjects)
    assert 0.2 < len(large.test_subjects) / 400 < 0.4
    assert dataset(2).split().test_subjects  # both sides non-empty even where the draws are not
