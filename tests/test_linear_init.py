"""The linear initialisation starts the network exactly at the rank-r linear neutraliser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelab.errors import FacelabError
from facelab.evaluation.metrics import per_vertex_error
from facelab.nn import build_network
from facelab.training.linear_init import fit_linear_neutraliser, linear_initialisation


def _setup(tiny_dataset, **options):
    split = tiny_dataset.split(0.7, seed=0)
    normalisation = tiny_dataset.normalisation(split)
    pairs = tiny_dataset.pairs_of(split.train_subjects)
    subjects = len(split.train_subjects)
    network = build_network(tiny_dataset.triangles, tiny_dataset.n_vertices, n_subjects=subjects, latent=8, **options)
    return split, normalisation, pairs, network


def _normalised(dataset, normalisation, rows):
    return torch.from_numpy(normalisation.normalise(np.asarray(dataset.vertices[rows])).astype(np.float32))


@pytest.mark.parametrize("variant", ["full", "gca"])
def test_the_initialised_network_is_the_linear_model(tiny_dataset, variant):
    split, normalisation, pairs, network = _setup(tiny_dataset, variant=variant)
    fit = linear_initialisation(network, tiny_dataset, pairs, normalisation, seed=1)
    test_pairs = tiny_dataset.pairs_of(split.test_subjects)
    x_e = _normalised(tiny_dataset, normalisation, [p.expressive for p in test_pairs])
    with torch.no_grad():
        predicted, _ = network.neutralise(x_e)
        rebuilt = network.decode(network.encode(x_e))
    expected = fit.predict(x_e.numpy())
    scale = np.abs(expected).max()
    np.testing.assert_allclose(predicted.numpy(), expected, atol=1e-4 * scale)
    np.testing.assert_allclose(rebuilt.numpy(), expected, atol=1e-4 * scale)  # G starts as the identity


def test_the_linear_start_neutralises_unseen_subjects(tiny_dataset):
    split, normalisation, pairs, network = _setup(tiny_dataset)
    linear_initialisation(network, tiny_dataset, pairs, normalisation)
    test_pairs = tiny_dataset.pairs_of(split.test_subjects)
    x_e = _normalised(tiny_dataset, normalisation, [p.expressive for p in test_pairs])
    with torch.no_grad():
        predicted = network.neutralise(x_e)[0].numpy() * normalisation.std + normalisation.mean
    truth = np.asarray(tiny_dataset.vertices[[p.neutral for p in test_pairs]])
    expressive = np.asarray(tiny_dataset.vertices[[p.expressive for p in test_pairs]])
    assert per_vertex_error(predicted, truth).mean() < 0.8 * per_vertex_error(expressive, truth).mean()


def test_codes_have_unit_scale(tiny_dataset):
    split, normalisation, pairs, network = _setup(tiny_dataset)
    fit = fit_linear_neutraliser(tiny_dataset, pairs, normalisation, rank=8)
    x = normalisation.normalise(np.asarray(tiny_dataset.vertices[[p.expressive for p in pairs]])).reshape(len(pairs), -1)
    codes = x @ fit.encoder_matrix + fit.encoder_bias
    spread = codes.std(axis=0)
    informative = spread > 1e-3  # the tiny set's fitted values span only a few directions
    assert informative.sum() >= 3
    np.testing.assert_allclose(spread[informative], 1.0, atol=0.05)
    np.testing.assert_allclose(codes.mean(axis=0), 0.0, atol=0.05)


@pytest.mark.parametrize("options, match", [({"conv": "pyg"}, "fast Chebyshev"),
                                            ({"generator_hidden": (10, 10, 10)}, "twice as wide")])
def test_unsupported_architectures_are_clear_errors(tiny_dataset, options, match):
    pytest.importorskip("torch_geometric") if options.get("conv") == "pyg" else None
    _, normalisation, pairs, network = _setup(tiny_dataset, **options)
    with pytest.raises(FacelabError, match=match):
        linear_initialisation(network, tiny_dataset, pairs, normalisation)


def test_the_ridge_is_chosen_on_held_out_subjects():
    from facelab.training.linear_init import RIDGES, held_out_subjects, _Moments, _select_ridge

    rng = np.random.default_rng(0)
    names = [f"s{i}" for i in range(20)]
    held_out = np.isin(np.repeat(names, 10), list(held_out_subjects(names, seed=0)))
    inputs = rng.normal(size=(200, 30))
    signal = inputs @ rng.normal(size=(30, 30))

    def chosen(outputs: np.ndarray) -> float:
        kept, out = _Moments(30), _Moments(30)
        kept.add(inputs[~held_out], outputs[~held_out])
        out.add(inputs[held_out], outputs[held_out])
        return _select_ridge(kept, out, 25)

    # Outputs that the inputs predict: almost no shrinkage; outputs unrelated to them: the most.
    assert chosen(signal + 0.01 * rng.normal(size=signal.shape)) <= 1e-4
    assert chosen(rng.normal(size=signal.shape)) == RIDGES[-1]


def test_a_fixed_ridge_is_used(tiny_dataset):
    _, normalisation, pairs, _ = _setup(tiny_dataset)
    assert fit_linear_neutraliser(tiny_dataset, pairs, normalisation, rank=8, ridge=1e-3).ridge == 1e-3


def test_the_fit_from_accumulated_sums_is_the_fit_on_the_rows():
    from facelab.training.linear_init import _Moments, _reduced_rank_regression

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(300, 12))
    outputs = inputs @ rng.normal(size=(12, 12)) + 0.1 * rng.normal(size=(300, 12))
    moments = _Moments(12)
    for rows in (slice(0, 100), slice(100, 300)):                   # accumulated in chunks
        moments.add(inputs[rows], outputs[rows])
    weights, fitted_mean, directions, spread = _reduced_rank_regression(moments, 1e-3, rank=5)

    x = np.c_[inputs, np.ones(300)]
    gram = x.T @ x
    penalty = 1e-3 * np.trace(gram[:12, :12]) / 12 * np.eye(13)
    penalty[12, 12] = 0.0
    expected = np.linalg.solve(gram + penalty, x.T @ outputs)
    fitted = x @ expected
    _, _, right = np.linalg.svd(fitted - fitted.mean(axis=0))
    np.testing.assert_allclose(weights, expected, atol=1e-10)
    np.testing.assert_allclose(fitted_mean, fitted.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(np.abs(directions.T @ right[:5].T), np.eye(5), atol=1e-8)   # the same, up to sign
    np.testing.assert_allclose(spread, ((fitted - fitted.mean(axis=0)) @ directions).std(axis=0), rtol=1e-8)
    # More code numbers than directions: the spare ones are zero columns.
    _, _, wide, wide_spread = _reduced_rank_regression(moments, 1e-3, rank=20)
    assert wide.shape == (12, 20) and not wide[:, 12:].any() and not wide_spread[12:].any()
