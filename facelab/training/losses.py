"""The paper's losses, Eq. 2 to 7.

By default the norms are means over elements (``|.|_1`` as a mean absolute error), so the loss
weights do not depend on the mesh size or the latent size; ``l1_reduction="sum"`` takes
``|.|_1`` literally, as the L1 norm of each sample (see ``TrainConfig.l1_reduction`` and the
docs/method.md). Reconstruction losses compare normalised vertices, the space the
network works in, optionally weighted per coordinate
(``vertex_weights``): the trainer passes std / mean(std) (``TrainConfig.rec_space = "mm"``), which
makes L_rec an L1 in millimetres at the normalised loss's scale, the error the paper reports,
instead of one that weights every coordinate by 1 / its spread over the training faces.

The adversarial term: Eq. 3 is the conditional GAN objective of pix2pix (the paper's [12]).
The discriminator maximises it (we minimise the equivalent binary cross-entropy on logits, which
is numerically stable where log(sigmoid) is not). For the generator, ``"non-saturating"``
(default) minimises -log D(G(z_e), z_e), as pix2pix does in practice; ``"minimax"`` minimises
log(1 - D(G(z_e), z_e)) literally.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facelab.training.config import LossWeights


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-(log D(z_n, z_e) + log(1 - D(G(z_e), z_e))), the negated Eq. 3 that D minimises."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_adversarial_loss(fake_logits: torch.Tensor, kind: str = "non-saturating") -> torch.Tensor:
    """The generator's part of Eq. 3."""
    if kind == "non-saturating":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    # log(1 - sigmoid(x)) = -softplus(x)
    return -F.softplus(fake_logits).mean()


@dataclass
class LossTerms:
    """Every term of one step (tensors; ``total`` is what the network's optimiser minimises)."""

    total: torch.Tensor
    l1: torch.Tensor
    gan: torch.Tensor
    l2l: torch.Tensor
    id: torch.Tensor
    rec: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {name: float(getattr(self, name).detach()) for name in ("total", "l1", "gan", "l2l", "id", "rec")}


def network_losses(
    outputs: dict[str, torch.Tensor],
    x_n: torch.Tensor,
    labels: torch.Tensor | None,
    weights: LossWeights,
    variant: str,
    fake_logits: torch.Tensor | None = None,
    gan_kind: str = "non-saturating",
    l2l_trains_encoder: bool = False,
    vertex_weights: torch.Tensor | None = None,
    l1_reduction: str = "mean",
) -> LossTerms:
    """L_tot (Eq. 7) for one batch.

    Args:
        outputs: the network's forward dict (``z_e``, ``z_n``, ``z_g``, ``rec_n``, ``rec_e``,
            ``logits_g``, ``logits_n``; for ``gca`` only ``rec_e``).
        x_n: (B, n, 3) normalised ground-truth neutral vertices.
        labels: (B,) subject indices, for L_id.
        fake_logits: D(G(z_e), z_e), needed by the full and no-id variants.
        l2l_trains_encoder: let L_L1 move the encoder through z_n (else z_n is a fixed target).
        vertex_weights: (n, 3) weights of each coordinate's absolute error in L_rec (None: 1).
        l1_reduction: ``"mean"`` (mean absolute error over elements) or ``"sum"``, the per-sample
            L1 norm that Eq. 2 and 6 write (summed over a sample's elements, averaged over the
            batch); see ``TrainConfig.l1_reduction``.
    """
    zero = x_n.new_zeros(())

    def reduced(mean_abs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # "sum" is the mean times the elements of one sample: n x 3 for a face, the latent size for a code.
        return mean_abs * target[0].numel() if l1_reduction == "sum" else mean_abs

    def vertex_l1(predicted: torch.Tensor) -> torch.Tensor:
        if vertex_weights is None:
            return reduced(F.l1_loss(predicted, x_n), x_n)
        return reduced(((predicted - x_n).abs() * vertex_weights).mean(), x_n)

    if variant == "gca":
        # The adapted GCA baseline: the autoencoder maps an expressive face to its neutral.
        rec = vertex_l1(outputs["rec_e"])
        return LossTerms(weights.rec * rec, zero, zero, zero, zero, rec)
    rec = vertex_l1(outputs["rec_n"]) + vertex_l1(outputs["rec_e"])                      # Eq. 6
    # See TrainConfig.l2l_trains_encoder: by default L_l2l sees G(z_e) and z_n as constants of
    # the encoder ("z_g_l2l" computed on a detached z_e, z_n detached), so it trains G only.
    z_g = outputs.get("z_g_l2l", outputs["z_g"])
    target = outputs["z_n"] if l2l_trains_encoder else outputs["z_n"].detach()
    latent_l1 = reduced(F.l1_loss(z_g, target), target)                                    # Eq. 2
    gan = generator_adversarial_loss(fake_logits, gan_kind) if fake_logits is not None else zero  # Eq. 3
    l2l = weights.l1 * latent_l1 + weights.gan * gan                                       # Eq. 4
    identity = zero
    if "logits_g" in outputs and labels is not None:
        identity = F.cross_entropy(outputs["logits_g"], labels) + F.cross_entropy(outputs["logits_n"], labels)  # Eq. 5
    use_l2l = variant != "no-l2l"
    use_id = variant != "no-id"
    total = (weights.l2l * l2l if use_l2l else zero) + (weights.id * identity if use_id else zero) + weights.rec * rec  # Eq. 7
    return LossTerms(total, latent_l1, gan, l2l, identity, rec)
