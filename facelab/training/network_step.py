"""One forward of the network for a training step: what DDP wraps for the network's update."""

from __future__ import annotations

import torch
from torch import nn

from facelab.training.config import TrainConfig


class NetworkStep(nn.Module):
    """Everything L_tot needs from one batch, in one forward: what DDP wraps for the network's update.

    It holds the encoder, decoder, generator and recognizer (not the discriminator, which has
    its own optimiser and its own DDP module), and every one of them takes part in each forward,
    in every variant, so DDP needs no search for unused parameters. By default L_l2l trains G on
    the encoder's codes taken as given: ``z_g_l2l`` = G(z_e detached) is computed here too.
    """

    def __init__(self, network, config: TrainConfig) -> None:
        super().__init__()
        self.encoder, self.decoder = network.encoder, network.decoder
        self.generator, self.recognizer = network.generator, network.recognizer
        self._forward = network.forward  # the network itself is not a submodule: D would come with it
        self.l2l_on_detached_codes = (network.generator is not None
                                      and config.variant in ("full", "no-id", "identity-preserving")
                                      and not config.experimental.l2l_trains_encoder)

    def forward(self, x_e: torch.Tensor, x_n: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self._forward(x_e, x_n)
        if self.l2l_on_detached_codes:
            outputs["z_g_l2l"] = self.generator(outputs["z_e"].detach())
        return outputs
