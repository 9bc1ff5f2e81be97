"""The mesh decoder ``Dec`` (paper Sec. 3): a fully connected layer and four Chebyshev layers."""

from __future__ import annotations

from collections.abc import Sequence

import scipy.sparse as sp
from torch import Tensor, nn

from facelab.nn.cheb_conv import check_laplacian_shape, make_cheb_conv


class Decoder(nn.Module):
    """Maps a latent code back to a face mesh.

    ``FC(z)`` is reshaped to (B, n, channels[0]) and passed through Chebyshev layers with
    ``channels`` outputs (paper: 32, 16, 16, 3). Each layer but the last is followed by the
    biased ReLU (a ReLU after the layer's own per-channel bias; see :class:`Encoder`); the last
    is linear, since vertex coordinates are signed. As in CoMA, the FC layer has no activation.

    Args:
        scaled_laplacian: (n, n) scaled Laplacian of the template (scipy or torch sparse).
        n_vertices: n, the template's vertex count (checked against the Laplacian).
        latent: size of the latent code (paper: 25).
        channels: output features of the Chebyshev layers; the FC layer outputs channels[0]
            features per vertex, and the last entry is the output's (3: x, y, z).
        K: Chebyshev polynomials per layer (paper's P = 6).
        conv: Chebyshev implementation, ``"fast"`` or ``"pyg"``.

    Shapes: z (B, latent) -> x (B, n, channels[-1]), contiguous.
    """

    def __init__(
        self,
        scaled_laplacian: sp.spmatrix | sp.sparray | Tensor,
        n_vertices: int,
        latent: int = 25,
        channels: Sequence[int] = (32, 16, 16, 3),
        K: int = 6,
        conv: str = "fast",
    ) -> None:
        super().__init__()
        check_laplacian_shape(scaled_laplacian, n_vertices)
        self.n_vertices, self.latent = n_vertices, latent
        self.first_channels = channels[0]
        self.from_latent = nn.Linear(latent, n_vertices * channels[0])
        widths = [channels[0], *channels]
        self.convs = nn.ModuleList(
            make_cheb_conv(c_in, c_out, K, scaled_laplacian, conv) for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        self.activation = nn.ReLU()

    def forward(self, z: Tensor) -> Tensor:
        x = self.from_latent(z).view(z.shape[0], self.n_vertices, self.first_channels)
        for index, conv in enumerate(self.convs):
            x = conv(x)
            if index < len(self.convs) - 1:
                x = self.activation(x)
        return x.contiguous()  # the Chebyshev layers hand back a transposed view
