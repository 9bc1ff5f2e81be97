"""The expression mixture inside the identity-preserving fusion: shapes, gradients, the fit and checkpoints."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import trimesh

from facelab.cli import main
from facelab.data.dataset import Pair
from facelab.data.layouts.generic import write_generic
from facelab.errors import FacelabError
from facelab.evaluation.metrics import expression_recognition, per_vertex_error
from facelab.nn import build_network
from facelab.nn.expression_mixture import ExpressionMixture
from facelab.training import TrainConfig, Trainer
from facelab.training import mixture_fit
from facelab.training.config import architecture_of
from tests.conftest import make_tiny_dataset


def test_the_mixture_averages_its_maps_under_the_expression_probabilities():
    torch.manual_seed(0)
    mixture = ExpressionMixture(expression_dims=4, identity_dims=6, experts=3, hidden=8)
    mixture.expert_weight.normal_()
    mixture.expert_bias.normal_()
    mixture.feature_mean.normal_()
    mixture.feature_scale.uniform_(0.5, 1.5)
    x_u, x_w = torch.randn(5, 4), torch.randn(5, 6)
    out = mixture(x_u, x_w)
    assert out.shape == (5, 4)
    probabilities = torch.softmax(mixture.expression_logits(x_u), dim=1)
    features = (torch.cat([x_u, x_w], 1) - mixture.feature_mean) / mixture.feature_scale
    by_expert = torch.stack([features @ mixture.expert_weight[k] + mixture.expert_bias[k] for k in range(3)], dim=1)
    torch.testing.assert_close(out, (probabilities.unsqueeze(-1) * by_expert).sum(1), atol=1e-5, rtol=1e-5)
    # fitted before training, never moved by the network's loss
    assert not any(p.requires_grad for p in mixture.parameters())


def test_the_mixture_fusion_starts_as_its_map_and_the_gates_reach_the_decoder():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    n = len(sphere.vertices)
    network = build_network(np.asarray(sphere.faces), n, variant="identity-preserving", n_subjects=5,
                            expression_dims=4, identity_dims=6, fusion_expressions=("a", "b", "neutral"))
    fusion = network.fusion
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3 * n, 10)))
    bases = torch.from_numpy(q.astype(np.float32))
    fusion.set_bases(torch.randn(3 * n) * 0.1, bases[:, :4], bases[:, 4:])
    fusion.mixture.expert_weight.normal_()
    x, decoded = torch.randn(3, n, 3), torch.randn(3, n, 3)
    x_u, x_w = fusion.coordinates(x)
    expected = fusion.center + fusion.mixture(x_u, x_w) @ fusion.expression_basis.T + x_w @ fusion.identity_basis.T
    torch.testing.assert_close(fusion(decoded, x).reshape(3, -1), expected, atol=1e-4, rtol=0)
    fusion(decoded, x).square().sum().backward()
    assert fusion.gate.grad.abs().sum() > 0
    with torch.no_grad():
        fusion.gate.fill_(1.0)  # gates at 1: the decoder's coordinates inside U, the map left out
    decoded_u = (decoded.reshape(3, -1) - fusion.center) @ fusion.expression_basis
    plain = fusion.center + decoded_u @ fusion.expression_basis.T + x_w @ fusion.identity_basis.T
    torch.testing.assert_close(fusion(decoded, x).reshape(3, -1), plain, atol=1e-4, rtol=0)


def test_a_run_fits_the_mixture_which_beats_doing_nothing_and_travels_with_the_checkpoint(tmp_path, monkeypatch,
                                                                                          capsys):
    from facelab.model import FaceLabModel

    monkeypatch.setattr(mixture_fit, "STEPS", 600)
    monkeypatch.setattr(mixture_fit, "MIN_PAIRS", 5)
    dataset = make_tiny_dataset(subjects=10)
    config = TrainConfig(data="tiny", variant="identity-preserving", epochs=1, batch_size=4, num_threads=1, lr=1e-12,
                         tensorboard=False, preview_every=0, expression_dims=8, identity_dims=20, fusion_mixture=True)
    trainer = Trainer(config, tmp_path / "run", dataset=dataset)
    trainer.run()
    assert trainer.network.fusion.mixture_is_fitted
    labels = sorted({p.expression for p in dataset.pairs})
    assert trainer.network.config.fusion_expressions == tuple(labels)
    assert trainer.mixture_fit.accuracy > 0.9  # the tiny set's expressions are easy to tell apart
    pairs = dataset.pairs_of(trainer.split.fit_subjects)
    expressive = np.asarray(dataset.vertices[[p.expressive for p in pairs]])
    truth = np.asarray(dataset.vertices[[p.neutral for p in pairs]])
    model = FaceLabModel.load(tmp_path / "run" / "last")
    assert model.network.config.fusion_expressions == tuple(labels)
    # the checkpoint says which router and shrinkage the fit chose, and a model fine-tuned from it,
    # its mixture not fitted again, keeps that record
    assert model.meta["mixture_fit"] == json.loads(json.dumps(trainer.mixture_fit.to_dict()))
    assert model.meta["mixture_fit"]["router"] in mixture_fit.ROUTERS
    tuned = Trainer(config, tmp_path / "tuned", dataset=dataset, init_checkpoint=tmp_path / "run" / "last")
    tuned.prepare()
    assert tuned.mixture_fit is None and tuned.checkpoint(None).meta["mixture_fit"] == model.meta["mixture_fit"]
    # fine-tuning it (CLI --init, the app's fine-tune box) keeps the method
    assert architecture_of(model.meta) == {"variant": "identity-preserving", "fusion_ridge": False,
                                           "fusion_mixture": True, "mixture_blends": 0, "neutral_pairs": 0,
                                           "input_noise_mm": 0.0}
    predicted = model.neutralise(expressive)
    np.testing.assert_allclose(predicted, trainer.predict(np.array([p.expressive for p in pairs])), atol=1e-3)
    assert per_vertex_error(predicted, truth).mean() < 0.5 * per_vertex_error(expressive, truth).mean()

    # It reads the expressions it learned, in the same pass as the prediction and the identity.
    analysis = model.analyse(expressive)
    np.testing.assert_array_equal(analysis.neutral, predicted)
    np.testing.assert_allclose(analysis.embedding, model.identity_embedding(expressive), atol=1e-5)
    assert model.expressions == tuple(labels)
    np.testing.assert_allclose(analysis.expression_probabilities.sum(axis=1), 1.0, atol=1e-5)
    read = expression_recognition([p.expression for p in pairs], model.expressions, analysis.expression_probabilities)
    assert read["pairs"] == len(pairs) and read["accuracy"] > 0.9
    top = model.top_expressions(expressive[0], k=2)
    assert top[0][0] == pairs[0].expression and top[0][1] >= top[1][1]
    # ... which the command line reports for one mesh and in a folder's report
    write_generic(dataset, tmp_path / "data", "ply", progress=False)
    pair = pairs[0]
    source = next((tmp_path / "data").rglob(f"{pair.subject}/{pair.expression}.ply"))
    assert main(["neutralize", str(source), "--out", str(tmp_path / "one.ply"), "--checkpoint",
                 str(tmp_path / "run" / "last"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["expressions"][0] == [pair.expression, pytest.approx(top[0][1], abs=1e-4)]
    assert main(["neutralize", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--checkpoint",
                 str(tmp_path / "run" / "last")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "last"), "--data", str(tmp_path / "data"),
                 "--no-baselines", "--no-robustness"]) == 0
    assert "expression read right: " in capsys.readouterr().out
    rows = {row["input"]: row for row in csv.DictReader((tmp_path / "out" / "neutralize.csv").open())}
    assert rows[str(source)]["read_expression"] == pair.expression
    assert float(rows[str(source)]["read_expression_probability"]) == pytest.approx(top[0][1], abs=1e-3)
    # ... and the app, on a sample it predicted alone or in a listed batch
    from facelab.app.session import entry_sample, predict_entries
    from facelab.app.state import AppState

    state = AppState()
    state.set_model(model)
    state.set_dataset(dataset, "tiny", {})
    entry = state.session.entries[0]
    sample = state.show_entry(entry)
    expected = model.top_expressions(np.asarray(dataset.vertices[entry.index]), k=3)
    assert [e for e, _p in sample.expressions] == [e for e, _p in expected]
    assert f"expression read as {expected[0][0]} (p = {expected[0][1]:.2f})" in state.readout()
    listed = entry_sample(model, dataset, entry, predict_entries(model, dataset, [entry])[entry.index])
    assert [e for e, _p in listed.expressions] == [e for e, _p in sample.expressions]
    np.testing.assert_allclose([p for _e, p in listed.expressions], [p for _e, p in sample.expressions], atol=1e-4)
    sample.expressions = [("expr_1", 0.41), ("expr_2", 0.39)]    # a reading split between two expressions
    assert "expression read as expr_1 (p = 0.41, uncertain: look closely)" in state.readout()

    again = Trainer(config, tmp_path / "again", dataset=dataset)
    again.prepare()  # the fit is seeded: the same data and seed give the same mixture
    for name, value in model.network.fusion.mixture.state_dict().items():
        torch.testing.assert_close(again.network.fusion.mixture.state_dict()[name], value)


def _mixture_fit_of(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(mixture_fit, "STEPS", 600)
    monkeypatch.setattr(mixture_fit, "MIN_PAIRS", 5)
    config = TrainConfig(data="tiny", variant="identity-preserving", epochs=1, batch_size=4, num_threads=1,
                         tensorboard=False, preview_every=0, expression_dims=8, identity_dims=20, fusion_mixture=True)
    trainer = Trainer(config, tmp_path / "run", dataset=dataset)
    trainer.prepare()
    return trainer.mixture_fit


def test_distinct_expressions_keep_maps_of_their_own(tmp_path, monkeypatch):
    fit = _mixture_fit_of(make_tiny_dataset(subjects=20), tmp_path, monkeypatch)
    assert set(fit.held_out_errors) == set(mixture_fit.SHRINKAGE)
    # every router was tried on the held-out subjects, and the one kept predicted them best
    assert set(fit.router_errors) == set(mixture_fit.ROUTERS)
    assert fit.router_errors[fit.router] == min(fit.held_out_errors.values()) == min(fit.router_errors.values())
    assert fit.shrinkage < float("inf")
    assert fit.held_out_errors[fit.shrinkage] < 0.95 * fit.held_out_errors[float("inf")]


def test_labels_that_say_nothing_pull_the_maps_together(tmp_path, monkeypatch):
    from facelab.data import MeshRecord

    # Twelve labels drawn at random: a map per label fits noise, the shared map does not.
    dataset = make_tiny_dataset(subjects=20)
    rng = np.random.default_rng(1)
    records = [r if r.expression == "neutral" else MeshRecord(r.subject, f"label_{rng.integers(12)}")
               for r in dataset.records]
    relabelled = type(dataset)(dataset.name, dataset.layout, dataset.vertices, dataset.triangles, records)
    fit = _mixture_fit_of(relabelled, tmp_path, monkeypatch)
    assert fit.shrinkage > 0
    # How much that saves depends on the router's seeded fit, whose rounding differs by CPU (on an
    # AMD EPYC the held-out error falls to 0.82 of the unshrunk maps').
    assert fit.held_out_errors[fit.shrinkage] < 0.9 * fit.held_out_errors[0.0]


def test_too_few_subjects_to_hold_out_fit_unshrunk_maps(tmp_path, monkeypatch):
    fit = _mixture_fit_of(make_tiny_dataset(subjects=6), tmp_path, monkeypatch)
    assert fit.shrinkage is None and fit.held_out_errors == {}
    assert fit.accuracy > 0.9


def test_blends_of_two_expressions_are_learned_as_an_expression_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(mixture_fit, "STEPS", 600)
    monkeypatch.setattr(mixture_fit, "MIN_PAIRS", 5)
    dataset = make_tiny_dataset(subjects=20)
    config = TrainConfig(data="tiny", variant="identity-preserving", epochs=0, batch_size=4, num_threads=1,
                         tensorboard=False, preview_every=0, expression_dims=8, identity_dims=20, fusion_mixture=True,
                         mixture_blends=6)
    trainer = Trainer(config, tmp_path / "run", dataset=dataset)
    trainer.prepare()
    expressions = trainer.network.config.fusion_expressions
    assert expressions == tuple(sorted({p.expression for p in dataset.pairs})) + ("blend",)
    # Blends are built in the subspaces' coordinates; meshes blended the same way are told apart
    # from single expressions by the router (held-out subjects: the test split's).
    pairs = dataset.pairs_of(trainer.split.test_subjects)
    singles = np.asarray(dataset.vertices[[p.expressive for p in pairs]])
    blends = np.stack([dataset.vertices[a.expressive] + dataset.vertices[b.expressive] - dataset.vertices[a.neutral]
                       for a in pairs for b in pairs if a.subject == b.subject and a.expression < b.expression])
    fusion = trainer.network.fusion

    @torch.no_grad()
    def said_blend(faces):
        x, _ = trainer.train_batches.faces(faces.astype(np.float32))
        logits = fusion.mixture.expression_logits(fusion.coordinates(x)[0])
        return (logits.argmax(1) == expressions.index("blend")).float().mean().item()

    assert said_blend(blends) > 0.8 and said_blend(singles) < 0.2


def test_rare_expressions_share_one_map():
    pairs = [Pair(i, 0, "s", "smile") for i in range(mixture_fit.MIN_PAIRS)] + [Pair(0, 0, "s", "wink")]
    assert mixture_fit.mixture_expressions(pairs) == ("smile", "other")
    assert mixture_fit.mixture_expressions(pairs[:-1]) == ("smile",)


@pytest.mark.parametrize("options, message", [
    ({"variant": "full", "fusion_mixture": True}, "identity-preserving"),
    ({"variant": "identity-preserving", "fusion_mixture": True, "fusion_ridge": True}, "choose one"),
    ({"variant": "identity-preserving", "mixture_blends": 4}, "without it"),
    ({"variant": "identity-preserving", "fusion_mixture": True, "mixture_blends": -1}, "blends per subject"),
])
def test_the_mixture_options_are_checked(options, message):
    with pytest.raises(FacelabError, match=message):
        TrainConfig(data="tiny", **options).validate()


def test_the_whitened_router_reads_the_standardised_coordinates_it_is_given():
    # Three expressions that differ slightly, inside a large spread that each person's own shape adds
    # along a shared direction: the whitened router, its whitening folded into its first layer,
    # names held-out people's expressions from the coordinates as they come.
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0, 0, 0], [0.6, 0, 0, 0], [0, 0.6, 0, 0]])
    person = np.array([1.0, 1.0, 0.5, 0.0])

    def faces(people):
        shapes = rng.normal(0, 5.0, size=(people, 1)) * person
        rows = [(shape + means[k] + rng.normal(0, 0.1, 4), k) for shape in shapes for k in range(3)]
        return torch.tensor(np.array([r for r, _ in rows])), torch.tensor([k for _, k in rows])

    inputs, labels = faces(60)
    held, held_labels = faces(40)
    inputs = inputs.float().double()
    noise = torch.diag(torch.tensor([0.5, 1.0, 2.0, 1.0], dtype=torch.float64))  # unit mesh noise's covariance
    root = torch.linalg.cholesky(noise)
    noise_mm, variance = 0.1, 0.1 ** 2 / 3
    router = ExpressionMixture(4, 0, 3, hidden=16).router
    mixture_fit._fit_router_of("whitened", router, inputs.float(), labels, noise, variance, root.float(), noise_mm, 800, 0)
    # the same router trained on the whitened coordinates (and whitened noise) reads the raw ones alike
    whitening = mixture_fit._within_expression_whitening(inputs, labels, variance * noise)
    on_whitened = ExpressionMixture(4, 0, 3, hidden=16).router
    mixture_fit._fit_router(on_whitened, (inputs @ whitening.T).float(), labels, (whitening @ root).float(), noise_mm,
                            800, 0)
    with torch.no_grad():
        assert (router(held.float()).argmax(1) == held_labels).float().mean() > 0.9
        torch.testing.assert_close(router(held.float()), on_whitened((held @ whitening.T).float()), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("shrinkage, noise_variance", [(0.0, 0.0), (0.3, 0.05)])
def test_the_discriminant_router_gives_each_expressions_gaussian_posterior(monkeypatch, shrinkage, noise_variance):
    # Expressions as Gaussians with one shared covariance (the pooled one, plus the expected noise,
    # pulled towards its mean eigenvalue): the router network, holding the linear discriminant
    # exactly, gives held-out faces the posterior those Gaussians and the expressions' shares of the
    # pairs give.
    from scipy.special import softmax
    from scipy.stats import multivariate_normal

    monkeypatch.setattr(mixture_fit, "WHITENING_SHRINKAGE", shrinkage)
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 1.0, 0.5, 0]])
    spread = np.array([[1.0, 0.8, 0, 0], [0, 0.6, 0, 0], [0, 0, 0.3, 0], [0, 0, 0, 0.5]])
    counts = (30, 60, 90)
    labels = torch.tensor(np.repeat(np.arange(3), counts))
    inputs = torch.tensor(means[labels.numpy()] + rng.normal(size=(len(labels), 4)) @ spread)
    router = ExpressionMixture(4, 0, 3, hidden=8).router
    noise = torch.diag(torch.tensor([0.5, 1.0, 2.0, 1.0], dtype=torch.float64))  # unit mesh noise's covariance
    mixture_fit._fit_router_of("discriminant", router, inputs.float(), labels, noise, noise_variance,
                               torch.linalg.cholesky(noise).float(), 0.0, 0, 0)

    x = inputs.float().double().numpy()
    fitted = np.array([x[labels.numpy() == k].mean(0) for k in range(3)])
    pooled = sum(np.cov(x[labels.numpy() == k].T, bias=True) * n for k, n in enumerate(counts)) / len(x)
    pooled = pooled + noise_variance * noise.numpy()
    pooled = (1 - shrinkage) * pooled + shrinkage * np.trace(pooled) / 4 * np.eye(4)
    held = means[rng.integers(3, size=200)] + rng.normal(size=(200, 4)) @ spread
    log_posterior = np.stack([multivariate_normal(fitted[k], pooled).logpdf(held) + np.log(counts[k] / len(x))
                              for k in range(3)], axis=1)
    with torch.no_grad():
        read = torch.softmax(router(torch.tensor(held, dtype=torch.float32)), dim=1).numpy()
    np.testing.assert_allclose(read, softmax(log_posterior, axis=1), atol=1e-4)


def test_a_router_too_narrow_for_the_discriminant_is_not_offered_it():
    assert "discriminant" in mixture_fit._routers_for(ExpressionMixture(8, 0, 3, hidden=16).router)
    assert mixture_fit._routers_for(ExpressionMixture(9, 0, 3, hidden=16).router) == ("plain", "whitened")
