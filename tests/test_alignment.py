"""Pose and scale: faces are brought into the template's frame and predictions mapped back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from facelab.errors import FacelabError
from facelab.evaluation.metrics import per_vertex_error, rank_k_identification
from facelab.mesh.alignment import Alignment, stable_region
from facelab.mesh.similarity import fit_similarity
from tests.conftest import make_tiny_dataset


def random_similarity(rng: np.random.Generator, max_shift=50.0, max_degrees=30.0, scales=(0.8, 1.25)):
    """A rotation of up to ``max_degrees`` about a random axis, a shift of up to ``max_shift`` mm
    and a uniform scale in ``scales``: (scale, (3, 3) rotation, (3,) translation)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    rotation = Rotation.from_rotvec(np.radians(rng.uniform(-max_degrees, max_degrees)) * axis).as_matrix()
    direction = rng.normal(size=3)
    shift = rng.uniform(0, max_shift) * direction / np.linalg.norm(direction)
    return rng.uniform(*scales), rotation, shift


def move(faces: np.ndarray, scale: float, rotation: np.ndarray, shift: np.ndarray) -> np.ndarray:
    return (scale * faces @ rotation.T + shift).astype(np.float32)


def test_the_fit_recovers_a_random_similarity_transform_exactly():
    rng = np.random.default_rng(0)
    points = rng.normal(scale=40.0, size=(200, 3))
    for _ in range(10):
        scale, rotation, shift = random_similarity(rng, max_degrees=180.0)
        moved = torch.from_numpy(move(points, scale, rotation, shift)[None].astype(np.float64))
        transform = fit_similarity(moved, torch.from_numpy(points))
        np.testing.assert_allclose(transform.apply(moved)[0].numpy(), points, atol=1e-4)
        np.testing.assert_allclose(transform.scale.item(), 1 / scale, rtol=1e-6)
        np.testing.assert_allclose(transform.invert(transform.apply(moved)).numpy(), moved.numpy(), atol=1e-8)
        assert np.linalg.det(transform.rotation[0].numpy()) == pytest.approx(1.0)


def test_a_mirrored_face_is_fitted_by_a_mirror_and_a_face_of_the_same_handedness_never_is():
    rng = np.random.default_rng(1)
    points = rng.normal(scale=40.0, size=(50, 3))
    for axis in range(3):
        scale, rotation, shift = random_similarity(rng, max_degrees=180.0)
        flip = np.ones(3)
        flip[axis] = -1.0
        for mirror, expected in ((flip, True), (np.ones(3), False)):
            moved = torch.from_numpy(move(points * mirror, scale, rotation, shift)[None].astype(np.float64))
            transform = fit_similarity(moved, torch.from_numpy(points))
            assert transform.mirrored().tolist() == [expected]
            np.testing.assert_allclose(transform.apply(moved)[0].numpy(), points, atol=1e-4)
            np.testing.assert_allclose(transform.scale.item(), 1 / scale, rtol=1e-6)
    # Only a turn is reported as a turn: one axis negated is a mirror and no angle, whichever axis.
    turn = Rotation.from_euler("y", 30, degrees=True).as_matrix()
    for flip in ((-1.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0, -1.0)):
        for rotation, degrees in ((np.eye(3), 0.0), (turn, 30.0)):
            mirrored = torch.from_numpy((points * flip) @ rotation.T)
            transform = fit_similarity(mirrored[None], torch.from_numpy(points))
            assert transform.degrees().item() == pytest.approx(degrees, abs=1e-4)


def test_a_weighted_fit_follows_the_region_and_ignores_the_rest():
    rng = np.random.default_rng(2)
    template = rng.normal(scale=30.0, size=(100, 3))
    face = template.copy()
    face[50:] += rng.normal(scale=20.0, size=(50, 3))  # "an expression" moves half the face
    region = Alignment("similarity", tuple(range(50)))
    scale, rotation, shift = random_similarity(rng)
    moved = torch.from_numpy(move(face, scale, rotation, shift)[None].astype(np.float64))
    aligned = region.fit(moved, torch.from_numpy(template)).apply(moved)[0].numpy()
    np.testing.assert_allclose(aligned[:50], template[:50], atol=1e-6)


def test_the_stable_region_is_the_half_the_expressions_move_least():
    neutral = np.zeros((3, 10, 3))
    expressive = neutral.copy()
    expressive[:, 5:, 0] = np.arange(1, 6)  # vertices 5..9 move, more and more
    assert stable_region(expressive, neutral) == (0, 1, 2, 3, 4)


def test_alignment_round_trips_through_json_and_old_checkpoints_read_as_none():
    alignment = Alignment("similarity", (3, 1, 2))
    assert Alignment.from_dict(json.loads(json.dumps(alignment.to_dict()))) == alignment
    assert Alignment.from_dict(None) == Alignment("none")
    with pytest.raises(FacelabError, match="unknown alignment"):
        Alignment.from_dict({"kind": "affine"})
    with pytest.raises(FacelabError, match="outside"):
        Alignment("similarity", (0, 1, 99)).check(10)


@pytest.fixture(scope="module")
def aligned_model(tmp_path_factory):
    from facelab.model import FaceLabModel
    from facelab.training import TrainConfig, Trainer

    dataset = make_tiny_dataset(subjects=10)
    run = tmp_path_factory.mktemp("aligned") / "run"
    Trainer(TrainConfig(data="tiny", epochs=2, batch_size=4, num_threads=1, tensorboard=False, preview_every=0),
            run, dataset=dataset).run()
    return FaceLabModel.load(run), dataset


def _test_pairs(model, dataset):
    test = set(model.meta["split"]["test"])
    pairs = [p for p in dataset.pairs if p.subject in test]
    return (np.asarray(dataset.vertices[[p.expressive for p in pairs]]),
            np.asarray(dataset.vertices[[p.neutral for p in pairs]]), [p.subject for p in pairs])


def test_a_trained_model_records_its_alignment(aligned_model):
    model, _ = aligned_model
    assert model.meta["alignment"]["kind"] in ("similarity", "canonical")  # what auto chose on this data
    assert model.meta["alignment_choice"]["chosen"] == model.meta["alignment"]["kind"]
    assert model.alignment.enabled and 3 <= len(model.alignment.region) < model.n_vertices


def test_predictions_move_with_their_input_under_random_similarity_transforms(aligned_model):
    model, dataset = aligned_model
    expressive, neutral, _ = _test_pairs(model, dataset)
    reference = model.neutralise(expressive)
    error = per_vertex_error(reference, neutral).mean()
    rng = np.random.default_rng(3)
    for _ in range(6):
        similarity = random_similarity(rng)
        predicted = model.neutralise(move(expressive, *similarity))
        np.testing.assert_allclose(predicted, move(reference, *similarity), atol=2e-3 * similarity[0] * 50)
        moved_error = per_vertex_error(predicted, move(neutral, *similarity)).mean() / similarity[0]
        assert moved_error <= 1.02 * error + 0.01


def test_identification_does_not_change_when_probes_move(aligned_model):
    model, dataset = aligned_model
    expressive, _, labels = _test_pairs(model, dataset)
    test = sorted(set(labels))
    gallery_rows = [i for i, r in enumerate(dataset.records) if r.is_neutral and r.subject in test]
    gallery = model.identity_embedding(np.asarray(dataset.vertices[gallery_rows]))
    gallery_labels = [dataset.records[i].subject for i in gallery_rows]
    still = rank_k_identification(model.identity_embedding(expressive), labels, gallery, gallery_labels, ks=(1,))
    rng = np.random.default_rng(4)
    moved = np.stack([move(face, *random_similarity(rng)) for face in expressive])
    assert rank_k_identification(model.identity_embedding(moved), labels, gallery, gallery_labels, ks=(1,)) == still


def test_a_mirrored_input_comes_back_as_the_mirror_of_its_prediction_and_keeps_its_identity(aligned_model):
    model, dataset = aligned_model
    expressive, _, labels = _test_pairs(model, dataset)
    reference = model.neutralise(expressive)
    rng = np.random.default_rng(6)
    for flip in ((-1.0, 1.0, 1.0), (1.0, 1.0, -1.0)):   # the two usual changes of handedness
        similarity = random_similarity(rng)
        mirrored = move(expressive * np.float32(flip), *similarity)
        np.testing.assert_allclose(model.neutralise(mirrored), move(reference * np.float32(flip), *similarity),
                                   atol=2e-3 * similarity[0] * 50)
        assert [s for s, _ in model.top_subjects(mirrored[0], k=3)] == [s for s, _ in model.top_subjects(
            expressive[0], k=3)]


def test_align_false_feeds_faces_as_they_are(aligned_model):
    from facelab.model import FaceLabModel

    model, dataset = aligned_model
    raw = FaceLabModel.load(model.source, align=False)
    assert not raw.alignment.enabled
    expressive, _, _ = _test_pairs(model, dataset)
    shifted = expressive + np.float32(20.0)
    # Unaligned, a shifted face is another input: the prediction does not just shift with it.
    assert np.abs(raw.neutralise(shifted) - (raw.neutralise(expressive) + 20.0)).max() > 0.5


def test_a_subjects_face_is_posed_like_an_input_whatever_its_own_pose(aligned_model):
    model, dataset = aligned_model
    expressive, neutral, _ = _test_pairs(model, dataset)
    face, probe = neutral[0], expressive[1]           # another subject's neutral beside this input
    reference = model.posed_like(face, probe)
    rng = np.random.default_rng(5)
    for _ in range(4):
        similarity = random_similarity(rng)
        # The input moved: the face follows it. The face moved: nothing changes.
        np.testing.assert_allclose(model.posed_like(face, move(probe, *similarity)), move(reference, *similarity),
                                   atol=1e-3 * similarity[0] * 50)
        np.testing.assert_allclose(model.posed_like(move(face, *random_similarity(rng)), probe), reference,
                                   atol=1e-2)
    both = model.posed_like(np.stack([face, face]), np.stack([probe, move(probe, *similarity)]))
    np.testing.assert_allclose(both[0], reference, atol=1e-4)
    with pytest.raises(FacelabError, match="same shape"):
        model.posed_like(face, expressive[:2])
