"""The canonical alignment: the template fit, then a learned return to the training data's frame."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from facelab.errors import FacelabError
from facelab.mesh.alignment import Alignment
from facelab.mesh.frame_correction import rotation_matrix, rotation_vector
from tests.conftest import make_tiny_dataset
from tests.test_alignment import move, random_similarity


def _people(count: int, seed: int, vertices: int = 300, modes: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """A template and ``count`` faces in its frame that differ by shape only (no pose): random
    lopsided shape modes, which a fit onto the template reads partly as a turn."""
    rng = np.random.default_rng(0)
    template = rng.normal(scale=30.0, size=(vertices, 3))
    basis = rng.normal(size=(modes, vertices, 3)) * np.linspace(0.0, 6.0, vertices)[None, :, None]
    weights = np.random.default_rng(seed).normal(size=(count, modes))
    faces = template + np.einsum("cm,mvk->cvk", weights, basis)
    return torch.from_numpy(template.astype(np.float32)), torch.from_numpy(faces.astype(np.float32))


def _degrees(transform) -> np.ndarray:
    return transform.degrees().numpy()


def test_rotation_vectors_and_matrices_are_inverse():
    vectors = torch.tensor([[0.3, -0.2, 0.4], [1e-9, 0.0, 0.0], [0.0, 2.5, 0.0]], dtype=torch.float64)
    matrices = rotation_matrix(vectors)
    np.testing.assert_allclose(rotation_vector(matrices).numpy(), vectors.numpy(), atol=1e-8)
    np.testing.assert_allclose((matrices @ matrices.transpose(1, 2)).numpy(), np.eye(3)[None].repeat(3, 0), atol=1e-12)


def test_the_correction_undoes_the_turn_a_persons_shape_gives_the_template_fit():
    template, training = _people(400, seed=1)
    _, unseen = _people(50, seed=2)
    similarity = Alignment("similarity")
    canonical = similarity.with_correction(training, template)
    tilted = _degrees(similarity.fit(unseen, template))
    assert tilted.mean() > 0.5                       # the shapes alone turn the plain fit
    corrected = canonical.fit(unseen, template)
    assert _degrees(corrected).mean() < 0.1 * tilted.mean()
    np.testing.assert_allclose(corrected.scale.numpy(), similarity.fit(unseen, template).scale.numpy(), rtol=1e-5)
    # learned the whole way back, the faces (already in the data's frame) stay where they are
    whole = similarity.with_correction(training, template, turn_only=False).fit(unseen, template)
    moved = (whole.apply(unseen) - unseen).norm(dim=-1).mean()
    plain = (similarity.fit(unseen, template).apply(unseen) - unseen).norm(dim=-1).mean()
    assert _degrees(whole).mean() < 0.1 * tilted.mean() and moved < 0.2 * plain


def test_the_canonical_alignment_is_equivariant_under_random_similarity_transforms():
    template, training = _people(400, seed=1)
    _, faces = _people(5, seed=3)
    canonical = Alignment("similarity", tuple(range(0, 300, 2))).with_correction(training, template)
    reference = canonical.fit(faces, template).apply(faces).numpy()
    rng = np.random.default_rng(4)
    for _ in range(5):
        moved = torch.from_numpy(move(faces.numpy(), *random_similarity(rng)))
        np.testing.assert_allclose(canonical.fit(moved, template).apply(moved).numpy(), reference, atol=2e-3)


def test_a_face_unlike_any_training_face_is_not_thrown_by_an_extrapolated_correction():
    template, training = _people(400, seed=1)
    canonical = Alignment("similarity").with_correction(training, template)
    strange = template + torch.from_numpy(np.random.default_rng(5).normal(scale=40.0, size=(1, 300, 3))).float()
    correction = canonical.correction(canonical.fit_template(strange, template).apply(strange))
    limit = canonical.correction.limits[:3].norm().item()
    assert rotation_vector(correction.rotation.double()).norm().item() <= limit + 1e-6


def test_a_canonical_alignment_needs_its_correction():
    template, training = _people(50, seed=1)
    canonical = Alignment("similarity").with_correction(training, template)
    values = json.loads(json.dumps(canonical.to_dict()))
    restored = Alignment.from_dict(values, canonical.tensors())
    np.testing.assert_allclose(restored.fit(training, template).apply(training).numpy(),
                               canonical.fit(training, template).apply(training).numpy(), atol=1e-5)
    with pytest.raises(FacelabError, match="lacks its learned correction"):
        Alignment.from_dict(values)
    with pytest.raises(FacelabError, match="learned correction"):
        Alignment("canonical")


def test_a_model_trained_with_the_canonical_alignment_keeps_it_in_its_checkpoint(tmp_path):
    from facelab.model import FaceLabModel
    from facelab.training import TrainConfig, Trainer

    dataset = make_tiny_dataset(subjects=10)
    run = tmp_path / "run"
    trainer = Trainer(TrainConfig(data="tiny", epochs=1, batch_size=4, num_threads=1, tensorboard=False,
                                  preview_every=0, alignment="canonical"), run, dataset=dataset)
    trainer.run()
    model = FaceLabModel.load(run / "last")
    assert model.meta["alignment"]["kind"] == "canonical" and model.alignment.correction is not None
    faces = np.asarray(dataset.vertices[:6])
    np.testing.assert_allclose(model.neutralise(faces), trainer.predict(np.arange(6)), atol=1e-3)
    similarity = random_similarity(np.random.default_rng(6))
    np.testing.assert_allclose(model.neutralise(move(faces, *similarity)), move(model.neutralise(faces), *similarity),
                               atol=2e-3 * similarity[0] * 50)


def _registered_pairs(count: int, seed: int, lopsided: bool) -> tuple[torch.Tensor, tuple[np.ndarray, np.ndarray]]:
    """A template and ``count`` (expressive, neutral) pairs all registered in its pose, as
    blendshape data is: people differ by 40 shape modes, each turning a random half of the face
    (``lopsided``: the template fit reads them partly as a turn of the whole face) or not at all,
    and 30 expression modes add to them linearly."""
    rng = np.random.default_rng(0)
    template = rng.normal(scale=30.0, size=(400, 3))
    axes = rng.normal(size=(40, 3))
    halves = rng.random((40, 400, 1)) < 0.5
    shapes = np.cross(axes[:, None, :] / np.linalg.norm(axes, axis=1)[:, None, None], template[None]) * halves
    expressions = rng.normal(scale=2.0, size=(30, 400, 3))
    people = np.random.default_rng(seed)
    weights = people.normal(size=(count, 40)) * (0.02 if lopsided else 0.0)
    neutral = template + np.einsum("cm,mvk->cvk", weights, shapes)
    amounts = people.uniform(0, 1, size=(count, 30)) * (people.random((count, 30)) < 0.3)
    expressive = neutral + np.einsum("cm,mvk->cvk", amounts, expressions)
    return torch.from_numpy(template.astype(np.float32)), (expressive, neutral)


def _choice(lopsided: bool):
    from facelab.training.alignment_choice import choose_alignment

    template, fit = _registered_pairs(2000, seed=1, lopsided=lopsided)
    _, check = _registered_pairs(100, seed=2, lopsided=lopsided)
    similarity = Alignment("similarity")
    faces = torch.from_numpy(np.concatenate(fit).astype(np.float32))
    candidates = {"similarity": similarity, "canonical": similarity.with_correction(faces, template)}
    return choose_alignment(candidates, template.numpy(), fit, check)


def test_auto_chooses_the_canonical_frame_where_a_persons_shape_turns_the_template_fit():
    choice = _choice(lopsided=True)
    assert choice.alignment.kind == "canonical" and choice.requested == "auto"
    errors = choice.linear_mm
    # a linear map exact in the data's frame is not in the template fit's: the turn is nonlinear
    assert errors["canonical"] < 0.1 * errors["similarity"] and errors["similarity"] > 0.005 * errors["do_nothing"]
    assert choice.reason.startswith("alignment canonical: linear check") and choice.validation_pairs == 100
    assert choice.to_dict()["chosen"] == "canonical"


def test_auto_keeps_the_plain_template_fit_where_no_shape_turns_it():
    choice = _choice(lopsided=False)
    assert choice.alignment.kind == "similarity"
    assert choice.linear_mm["similarity"] < 0.001 * choice.linear_mm["do_nothing"]


def test_a_new_run_records_what_chose_its_alignment_and_a_resumed_run_keeps_it(tmp_path):
    from facelab.model import FaceLabModel
    from facelab.training import TrainConfig, Trainer

    dataset = make_tiny_dataset(subjects=10)
    config = TrainConfig(data="tiny", epochs=1, batch_size=4, num_threads=1, tensorboard=False, preview_every=0)
    assert config.alignment == "auto"
    run = tmp_path / "run"
    Trainer(config, run, dataset=dataset).run()
    model = FaceLabModel.load(run / "last")
    choice = model.meta["alignment_choice"]
    assert choice["requested"] == "auto" and choice["chosen"] == model.meta["alignment"]["kind"]
    assert set(choice["linear_mm"]) == {"similarity", "canonical", "do_nothing"} and choice["validation_pairs"] > 0
    resumed = Trainer(dataclasses.replace(config, epochs=2), run, dataset=dataset, resume=True)
    resumed.run()
    saved = FaceLabModel.load(run / "last").meta
    assert saved["epoch"] == 2 and saved["alignment_choice"] == choice  # saved again, the choice kept
    # a kind given by name is used as it is, with nothing to record
    named = Trainer(dataclasses.replace(config, alignment="similarity"), tmp_path / "named", dataset=dataset)
    named.run()
    assert "alignment_choice" not in FaceLabModel.load(tmp_path / "named" / "last").meta
