"""The latent translator ``G`` (paper Sec. 2.2): expressive latent code -> neutral latent code."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class Generator(nn.Module):
    """An MLP ``latent -> hidden... -> latent`` with ReLUs between layers (paper: 100, 200, 50, 25).

    The output layer stays linear. The paper follows each of the four layers with a ReLU, but a
    ReLU on the output would clip the generated code to be non-negative, while the encoder's
    codes it must match (L1 to ``z_n``, and the discriminator's real samples) are unconstrained
    and routinely negative.

    Shapes: z_e (B, latent) -> z_g (B, latent).
    """

    def __init__(self, latent: int = 25, hidden: Sequence[int] = (100, 200, 50)) -> None:
        super().__init__()
        self.latent = latent
        widths = [latent, *hidden, latent]
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(width_in, width_out))
            if index < len(widths) - 2:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, z_e: Tensor) -> Tensor:
        return self.layers(z_e)
