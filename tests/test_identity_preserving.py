"""The identity-preserving variant: the decoded face inside the expression subspace, the input's
geometry outside it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from facelab.nn import build_network
from facelab.nn.subspace_fusion import SubspaceFusion
from facelab.training import TrainConfig, Trainer
from tests.conftest import make_tiny_dataset


def orthonormal(rng: np.random.Generator, size: int, columns: int) -> torch.Tensor:
    q, _ = np.linalg.qr(rng.normal(size=(size, columns)))
    return torch.from_numpy(q.astype(np.float32))


@pytest.fixture(scope="module")
def sphere2():
    sphere = trimesh.creation.icosphere(subdivisions=2)  # 162 vertices
    return np.asarray(sphere.faces), len(sphere.vertices)


def fitted_network(sphere, expression_dims=8, identity_dims=12):
    triangles, n = sphere
    network = build_network(triangles, n, variant="identity-preserving", n_subjects=5,
                            expression_dims=expression_dims, identity_dims=identity_dims)
    bases = orthonormal(np.random.default_rng(0), 3 * n, expression_dims + identity_dims)
    network.fusion.set_bases(torch.randn(3 * n) * 0.1, bases[:, :expression_dims], bases[:, expression_dims:])
    return network


def test_fusion_keeps_the_prediction_inside_the_expression_subspace_and_the_input_outside():
    rng = np.random.default_rng(1)
    n = 40
    bases = orthonormal(rng, 3 * n, 10)
    u, w = bases[:, :4], bases[:, 4:]
    center = torch.randn(3 * n)
    fusion = SubspaceFusion(n, 4, 6)
    fusion.set_bases(center, u, w)
    identity = center + w @ torch.randn(6)
    neutral = identity + u @ torch.randn(4)
    expressive = neutral + u @ torch.randn(4)  # an expression moves the face within U
    # A perfect prediction inside U gives the neutral face back exactly, whatever the decoder
    # got wrong outside U.
    wrong = w @ torch.randn(6) + 0.5 * torch.randn(3 * n)
    decoded = neutral + wrong - u @ (u.T @ wrong)
    fused = fusion(decoded.view(1, n, 3), expressive.view(1, n, 3))
    torch.testing.assert_close(fused.view(-1), neutral, atol=1e-4, rtol=0)
    # Noise outside U and W is not copied from the input.
    noise = torch.randn(3 * n)
    noise = noise - u @ (u.T @ noise) - w @ (w.T @ noise)
    noisy = fusion(decoded.view(1, n, 3), (expressive + noise).view(1, n, 3))
    torch.testing.assert_close(noisy, fused, atol=1e-4, rtol=0)


def test_outputs_shapes_and_gradients_reach_every_parameter(sphere2):
    torch.manual_seed(0)
    network = fitted_network(sphere2)
    n = sphere2[1]
    x_e, x_n = torch.randn(3, n, 3), torch.randn(3, n, 3)
    outputs = network(x_e, x_n)
    assert {key: tuple(value.shape) for key, value in outputs.items()} == {
        "z_e": (3, 25), "z_n": (3, 25), "z_g": (3, 25), "rec_n": (3, n, 3), "rec_e": (3, n, 3),
        "logits_g": (3, 5), "logits_n": (3, 5),
    }  # fmt: skip
    loss = sum(value.square().mean() for value in outputs.values())
    loss = loss + network.discriminator(outputs["z_g"], outputs["z_e"]).mean()
    loss.backward()
    for name, parameter in network.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert not any(name.startswith("fusion") for name, _ in network.named_parameters())  # fitted, not trained


def test_the_neutralisation_is_the_fused_decoding(sphere2):
    network = fitted_network(sphere2).eval()
    x = torch.randn(2, sphere2[1], 3)
    with torch.no_grad():
        neutral, code = network.neutralise(x)
        expected = network.fusion(network.decode(network.generator(network.encode(x))), x)
    torch.testing.assert_close(neutral, expected)
    assert code.shape == (2, 25)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    dataset = make_tiny_dataset(subjects=10)
    run = tmp_path_factory.mktemp("identity-preserving") / "run"
    config = TrainConfig(data="tiny", variant="identity-preserving", epochs=2, batch_size=4, num_threads=1,
                         tensorboard=False, preview_every=0, expression_dims=8, identity_dims=20, neutral_pairs=2)
    trainer = Trainer(config, run, dataset=dataset)
    trainer.run()
    return trainer, run, dataset


def test_the_fitted_subspaces_are_orthonormal_and_orthogonal(trained):
    trainer, _, _ = trained
    fusion = trainer.network.fusion
    u, w = fusion.expression_basis.double(), fusion.identity_basis.double()
    used_w = w[:, w.abs().sum(dim=0) > 0]  # 7 fit subjects span fewer than 20 identity directions
    torch.testing.assert_close(u.T @ u, torch.eye(u.shape[1], dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(used_w.T @ used_w, torch.eye(used_w.shape[1], dtype=torch.float64), atol=1e-5, rtol=0)
    assert (u.T @ w).abs().max() < 1e-5


def test_a_checkpoint_keeps_its_subspaces_and_predicts_as_trained(trained):
    from facelab.model import FaceLabModel

    trainer, run, dataset = trained
    model = FaceLabModel.load(run / "last")
    assert model.variant == "identity-preserving"
    torch.testing.assert_close(model.network.fusion.expression_basis, trainer.network.fusion.expression_basis)
    pairs = dataset.pairs_of(trainer.split.test_subjects)
    rows = np.array([p.expressive for p in pairs])
    np.testing.assert_allclose(model.neutralise(np.asarray(dataset.vertices[rows])), trainer.predict(rows), atol=1e-4)


def test_neutral_pairs_join_the_training_pairs(trained):
    trainer, _, dataset = trained
    paired = dataset.pairs_of(trainer.split.fit_subjects)
    own = [p for p in trainer.train_batches.pairs if p.expressive == p.neutral]
    assert len(trainer.train_batches.pairs) == len(paired) + len(own)
    assert len(own) == 2 * len(trainer.split.fit_subjects)


def test_input_noise_is_drawn_from_the_step_alone_and_has_the_asked_size(tmp_path):
    dataset = make_tiny_dataset(subjects=6)
    config = TrainConfig(data="tiny", epochs=1, batch_size=4, num_threads=1, tensorboard=False, preview_every=0,
                         input_noise_mm=0.5)
    trainer = Trainer(config, tmp_path / "run", dataset=dataset)
    trainer.prepare()
    x_e, _, _ = trainer.train_batches.batch(0, 0)
    noisy = trainer._noisy(x_e)
    in_mm = (noisy - x_e) * trainer.train_batches.std
    assert 0 < in_mm.std() < 0.5
    assert not torch.equal(trainer._noisy(x_e), noisy)  # the next step draws new noise
    again = Trainer(config, tmp_path / "again", dataset=dataset)
    again.prepare()
    torch.testing.assert_close(again._noisy(x_e), noisy)  # from the step alone: a resumed run adds the same


def test_fine_tuning_keeps_the_models_template_variant_and_alignment(trained, tmp_path):
    from facelab.data import FaceDataset
    from facelab.errors import FacelabError

    trainer, run, dataset = trained
    # The same people in another frame: shifted and scaled, as a lab's own registration might be.
    moved = FaceDataset("moved", "generic", (1.1 * np.asarray(dataset.vertices) + 25.0).astype(np.float32),
                        dataset.triangles, dataset.records)
    config = TrainConfig(data="moved", variant="identity-preserving", epochs=1, batch_size=4, num_threads=1,
                         tensorboard=False, preview_every=0, expression_dims=8, identity_dims=20)
    tuned = Trainer(config, tmp_path / "tuned", dataset=moved, init_checkpoint=run / "last")
    tuned.prepare()
    np.testing.assert_array_equal(tuned.template_vertices, trainer.template_vertices)
    assert tuned.alignment.to_dict() == trainer.alignment.to_dict()
    for name, tensor in trainer.alignment.tensors().items():
        torch.testing.assert_close(tuned.alignment.tensors()[name], tensor)
    torch.testing.assert_close(tuned.network.fusion.identity_basis, trainer.network.fusion.identity_basis)
    pairs = moved.pairs_of(tuned.split.test_subjects)
    rows = np.array([p.expressive for p in pairs])
    before = trainer.predict(rows)
    np.testing.assert_allclose(tuned.predict(rows), 1.1 * before + 25.0, atol=1e-2)  # moves with its input

    paper = TrainConfig(data="moved", variant="full", epochs=1, batch_size=4, num_threads=1, tensorboard=False,
                        preview_every=0)
    with pytest.raises(FacelabError, match="identity-preserving"):
        Trainer(paper, tmp_path / "paper", dataset=moved, init_checkpoint=run / "last").prepare()


def test_the_ridge_fusion_starts_as_its_map_and_trains_its_gates(sphere2):
    triangles, n = sphere2
    network = build_network(triangles, n, variant="identity-preserving", n_subjects=5, expression_dims=4,
                            identity_dims=6, fusion_ridge=True)
    fusion = network.fusion
    rng = np.random.default_rng(3)
    bases = orthonormal(rng, 3 * n, 10)
    fusion.set_bases(torch.randn(3 * n) * 0.1, bases[:, :4], bases[:, 4:])
    fusion.set_ridge(torch.randn(4, 10), torch.randn(4))
    x = torch.randn(3, n, 3)
    decoded = torch.randn(3, n, 3)
    x_u, x_w = fusion.coordinates(x)
    mapped = torch.cat([x_u, x_w], 1) @ fusion.ridge_weight.T + fusion.ridge_bias
    expected = fusion.center + mapped @ fusion.expression_basis.T + x_w @ fusion.identity_basis.T
    # gates at 0: the decoder does not matter, the prediction is the map's
    torch.testing.assert_close(fusion(decoded, x).reshape(3, -1), expected, atol=1e-4, rtol=0)
    fusion(decoded, x).square().sum().backward()
    assert fusion.gate.grad is not None and fusion.gate.grad.abs().sum() > 0
    with torch.no_grad():
        fusion.gate.fill_(1.0)  # gates at 1: the decoder's coordinates inside U, as without the map
    plain = SubspaceFusion(n, 4, 6)
    plain.set_bases(fusion.center, fusion.expression_basis, fusion.identity_basis)
    torch.testing.assert_close(fusion(decoded, x), plain(decoded, x), atol=1e-4, rtol=0)


def test_the_fitted_ridge_map_neutralises_training_pairs_better_than_doing_nothing(tmp_path):
    from facelab.evaluation.metrics import per_vertex_error
    from facelab.model import FaceLabModel

    dataset = make_tiny_dataset(subjects=10)
    config = TrainConfig(data="tiny", variant="identity-preserving", epochs=1, batch_size=4, num_threads=1, lr=1e-12,
                         tensorboard=False, preview_every=0, expression_dims=8, identity_dims=20, fusion_ridge=True)
    trainer = Trainer(config, tmp_path / "run", dataset=dataset)
    trainer.run()
    assert trainer.network.fusion.ridge_is_fitted
    pairs = dataset.pairs_of(trainer.split.fit_subjects)
    expressive = np.asarray(dataset.vertices[[p.expressive for p in pairs]])
    truth = np.asarray(dataset.vertices[[p.neutral for p in pairs]])
    model = FaceLabModel.load(tmp_path / "run" / "last")  # the map and gates travel with the checkpoint
    assert model.network.config.fusion_ridge
    assert per_vertex_error(model.neutralise(expressive), truth).mean() < 0.5 * per_vertex_error(expressive, truth).mean()
    with pytest.raises(Exception, match="identity-preserving"):
        TrainConfig(data="tiny", variant="full", fusion_ridge=True).validate()


def test_a_run_keeps_its_start_when_training_makes_the_validation_error_worse(tmp_path):
    from facelab.evaluation.metrics import per_vertex_error
    from facelab.model import FaceLabModel
    from facelab.training.events import TrainingCallback

    class Record(TrainingCallback):
        def __init__(self):
            self.stages, self.epochs = [], []

        def on_preparing(self, event):
            self.stages.append(event.stage)

        def on_epoch(self, event):
            self.epochs.append(event.metrics["val_mean_error_mm"])

    dataset = make_tiny_dataset(subjects=10)
    record = Record()
    # A learning rate far too high: the epoch ends worse than the fitted ridge start.
    config = TrainConfig(data="tiny", variant="identity-preserving", fusion_ridge=True, epochs=1, batch_size=4, lr=0.1,
                         num_threads=1, tensorboard=False, preview_every=0, expression_dims=8, identity_dims=20)
    trainer = Trainer(config, tmp_path / "run", [record], dataset=dataset)
    result = trainer.run()
    start = float(record.stages[-1].rsplit(" ", 2)[1])
    assert record.epochs[0] > start + 0.01, "the scenario: training made the validation error worse"
    assert result.best_val_error_mm == pytest.approx(start, abs=1e-4)
    best = FaceLabModel.load(tmp_path / "run" / "best", align=True)
    assert best.meta["epoch"] == 0
    pairs = trainer.val_pairs
    predicted = best.neutralise(np.asarray(dataset.vertices[[p.expressive for p in pairs]]))
    error = per_vertex_error(predicted, np.asarray(dataset.vertices[[p.neutral for p in pairs]])).mean()
    assert error == pytest.approx(start, abs=1e-3)
    last = FaceLabModel.load(tmp_path / "run" / "last")
    assert last.meta["epoch"] == 1                      # the trained network is still there, as "last"


@pytest.mark.parametrize("variant", ["identity-preserving", "full"])
def test_zero_epochs_save_the_start_as_best_and_last(tmp_path, variant):
    from facelab.cli import main
    from facelab.evaluation.metrics import per_vertex_error
    from facelab.model import FaceLabModel

    from facelab.data.layouts.generic import write_generic

    data = make_tiny_dataset(subjects=10)
    root = write_generic(data, tmp_path / "data", progress=False)
    extra = ["--fusion-ridge", "--expression-dims", "8", "--identity-dims", "20"] if variant != "full" else []
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "run"), "--variant", variant,
                 "--epochs", "0", "--batch-size", "4", "--threads", "1", *extra]) == 0
    best, last = (FaceLabModel.load(tmp_path / "run" / name) for name in ("best", "last"))
    assert best.meta["epoch"] == last.meta["epoch"] == 0 and best.meta["position"]["global_step"] == 0
    faces = np.asarray(data.vertices[:6])
    np.testing.assert_array_equal(best.neutralise(faces), last.neutralise(faces))
    # The start is the closed-form fit: better than doing nothing on the training pairs it was fitted on.
    pairs = [p for p in data.pairs if p.subject in set(best.meta["split"]["train"])]
    expressive = np.asarray(data.vertices[[p.expressive for p in pairs]])
    neutral = np.asarray(data.vertices[[p.neutral for p in pairs]])
    assert per_vertex_error(best.neutralise(expressive), neutral).mean() < per_vertex_error(expressive, neutral).mean()
