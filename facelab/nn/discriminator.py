"""The conditional discriminator ``D`` (paper Sec. 2.2, Eq. 3) on latent codes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Discriminator(nn.Module):
    """Scores a neutral latent code given the expressive code it should come from.

    Input ``concat(z, z_e)`` (B, 2 * latent), where ``z`` is a real neutral code ``z_n`` or a
    generated one ``G(z_e)`` and ``z_e`` is the condition; FC layers (paper: 100, 200, 50) with
    LeakyReLU(0.2), then one output.

    Returns LOGITS, not probabilities: the paper's final sigmoid is folded into the loss
    (``BCEWithLogitsLoss``), which computes ``log(sigmoid(.))`` without the overflow and lost
    gradient of taking a log of a saturated sigmoid.

    Shapes: z (B, latent), z_e (B, latent) -> logits (B,).
    """

    def __init__(self, latent: int = 25, hidden: Sequence[int] = (100, 200, 50), negative_slope: float = 0.2) -> None:
        super().__init__()
        self.latent = latent
        widths = [2 * latent, *hidden]
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.LeakyReLU(negative_slope)]
        layers.append(nn.Linear(widths[-1], 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor, z_e: Tensor) -> Tensor:
        return self.layers(torch.cat([z, z_e], dim=1)).squeeze(1)
