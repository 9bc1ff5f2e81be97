"""The canonical alignment: the template fit, then a learned return to the training data's frame."""

from __future__ import annotations

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
