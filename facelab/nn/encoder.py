"""The mesh encoder ``Enc`` (paper Sec. 3): four Chebyshev layers and a fully connected bottleneck."""

from __future__ import annotations

from collections.abc import Sequence

import scipy.sparse as sp
from torch import Tensor, nn

from facelab.nn.cheb_conv import check_laplacian_shape, make_cheb_conv


class Encoder(nn.Module):
    """Maps a face mesh to its latent code: ``z = FC(flatten(relu(cheb(...relu(cheb(x))))))``.

    Each Chebyshev layer is followed by the paper's "biased ReLU" (its ref. [11]): a ReLU with a
    learnable per-channel bias added before it. The Chebyshev layer's own per-channel bias is
    exactly that bias, so a plain ReLU after the layer is the biased ReLU; a second bias would be
    redundant (two biases that only ever appear summed).

    Args:
        scaled_laplacian: (n, n) scaled Laplacian of the template (scipy or torch sparse).
        n_vertices: n, the template's vertex count (checked against the Laplacian).
        in_channels: features per input vertex (3: x, y, z).
        channels: output features of the Chebyshev layers (paper: 16, 16, 16, 32).
        latent: size of the latent code (paper: 25).
        K: Chebyshev polynomials per layer (paper's P = 6).
        conv: Chebyshev implementation, ``"fast"`` or ``"pyg"`` (see :mod:`facelab.nn.cheb_conv`).

    Shapes: x (B, n, in_channels) -> z (B, latent).
    """

    def __init__(
        self,
        scaled_laplacian: sp.spmatrix | sp.sparray | Tensor,
        n_vertices: int,
        in_channels: int = 3,
        channels: Sequence[int] = (16, 16, 16, 32),
        latent: int = 25,
        K: int = 6,
        conv: str = "fast",
    ) -> None:
        super().__init__()
        check_laplacian_shape(scaled_laplacian, n_vertices)
        self.n_vertices, self.in_channels, self.latent = n_vertices, in_channels, latent
        widths = [in_channels, *channels]
        self.convs = nn.ModuleList(
            make_cheb_conv(c_in, c_out, K, scaled_laplacian, conv) for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        self.activation = nn.ReLU()
        self.to_latent = nn.Linear(n_vertices * widths[-1], latent)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = self.activation(conv(x))
        return self.to_latent(x.reshape(x.shape[0], -1))

