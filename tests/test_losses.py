"""Eq. 2 to 7 on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.training.config import LossWeights
from facelab.training.losses import discriminator_loss, generator_adversarial_loss, network_losses


def _outputs():
    torch.manual_seed(0)
    b, n, d, s = 2, 5, 4, 3
    return {
        "z_e": torch.randn(b, d), "z_n": torch.randn(b, d), "z_g": torch.randn(b, d),
        "rec_n": torch.randn(b, n, 3), "rec_e": torch.randn(b, n, 3),
        "logits_g": torch.randn(b, s), "logits_n": torch.randn(b, s),
    }, torch.randn(2, 5, 3), torch.tensor([0, 2])


def test_total_is_the_papers_weighted_sum():
    outputs, x_n, labels = _outputs()
    weights = LossWeights()
    fake = torch.tensor([0.3, -1.2])
    terms = network_losses(outputs, x_n, labels, weights, "full", fake)
    l1 = (outputs["z_g"] - outputs["z_n"]).abs().mean()
    gan = -torch.log(torch.sigmoid(fake)).mean()
    ident = torch.nn.functional.cross_entropy(outputs["logits_g"], labels) + torch.nn.functional.cross_entropy(outputs["logits_n"], labels)
    rec = (outputs["rec_n"] - x_n).abs().mean() + (outputs["rec_e"] - x_n).abs().mean()
    expected = 0.5 * (0.4 * l1 + 1.0 * gan) + 0.05 * ident + 2.0 * rec
    assert float(terms.total.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert float(terms.l2l.detach()) == pytest.approx(float((0.4 * l1 + gan).detach()), rel=1e-6)


def test_variants_drop_their_terms():
    outputs, x_n, labels = _outputs()
    w = LossWeights()
    full = network_losses(outputs, x_n, labels, w, "full", torch.zeros(2))
    no_id = network_losses(outputs, x_n, labels, w, "no-id", torch.zeros(2))
    no_l2l = network_losses(outputs, x_n, labels, w, "no-l2l", None)
    assert float(full.total - no_id.total) == pytest.approx(0.05 * float(full.id), rel=1e-6)
    assert float(no_l2l.total) == pytest.approx(float(0.05 * full.id + 2 * full.rec), rel=1e-6)
    gca = network_losses({"rec_e": outputs["rec_e"]}, x_n, labels, w, "gca")
    assert float(gca.total) == pytest.approx(2 * float((outputs["rec_e"] - x_n).abs().mean()), rel=1e-6)


def test_adversarial_terms():
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    expected = -(math.log(1 / (1 + math.exp(-2.0))) + math.log(1 - 1 / (1 + math.exp(1.0))))
    assert float(discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-6)
    assert float(generator_adversarial_loss(fake, "minimax")) == pytest.approx(math.log(1 - 1 / (1 + math.exp(1.0))), rel=1e-6)


def test_the_neutral_code_is_a_fixed_target_by_default():
    outputs, x_n, labels = _outputs()
    outputs["z_n"].requires_grad_(True)
    outputs["z_g"].requires_grad_(True)
    network_losses(outputs, x_n, labels, LossWeights(), "full", None).l1.backward()
    assert outputs["z_n"].grad is None and outputs["z_g"].grad is not None


def test_the_sum_reduction_is_each_samples_l1_norm():
    outputs, x_n, labels = _outputs()
    w = LossWeights()
    fake = torch.tensor([0.3, -1.2])
    terms = network_losses(outputs, x_n, labels, w, "full", fake, l1_reduction="sum")

    def per_sample(a, b):
        return (a - b).abs().flatten(1).sum(1).mean()

    assert float(terms.l1) == pytest.approx(float(per_sample(outputs["z_g"], outputs["z_n"])), rel=1e-6)
    rec = per_sample(outputs["rec_n"], x_n) + per_sample(outputs["rec_e"], x_n)
    assert float(terms.rec) == pytest.approx(float(rec), rel=1e-6)
    # The adversarial and identity terms are means over the batch either way.
    mean = network_losses(outputs, x_n, labels, w, "full", fake)
    assert float(terms.gan) == pytest.approx(float(mean.gan), rel=1e-6)
    assert float(terms.id) == pytest.approx(float(mean.id), rel=1e-6)
