"""The mesh encoder ``Enc`` (paper Sec. 3): four Chebyshev layers and a fully connected bottleneck."""

from __future__ import annotations

from collections.abc import Sequence

import scipy.sparse as sp
from torch import Tensor, nn

from facelab.nn.cheb_conv import check_laplacian_shape, make_cheb_conv
from facelab.nn.mesh_sampling import MeshResampling
from facelab.nn.precision import float32_region


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

        coarse_laplacians: optional CoMA-style downsampling (large templates): the scaled
            Laplacians of the coarser template levels 1..L, and ``down`` the L pooling matrices
            (level i -> i + 1, (n_{i+1}, n_i)). Layer i runs on level min(i, L) and is followed by
            pooling while i < L, so the fully connected layer sees n_L vertices instead of n.
            Empty (default): the paper's architecture on the full mesh.

    Shapes: x (B, n, in_channels) -> z (B, latent).

    Under autocast the Chebyshev layers and the pooling run in float32 (see
    :mod:`facelab.nn.precision`); the fully connected layer follows autocast.
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
        coarse_laplacians: Sequence[sp.spmatrix | sp.sparray | Tensor] = (),
        down: Sequence[sp.spmatrix | sp.sparray] = (),
    ) -> None:
        super().__init__()
        check_laplacian_shape(scaled_laplacian, n_vertices)
        if len(coarse_laplacians) != len(down) or len(down) > len(channels):
            raise ValueError(f"downsampling needs one Laplacian and one pooling matrix per level, at most one level "
                             f"per layer ({len(channels)}); got {len(coarse_laplacians)} and {len(down)}")
        self.n_vertices, self.in_channels, self.latent = n_vertices, in_channels, latent
        laplacians = [scaled_laplacian, *coarse_laplacians]
        levels = [min(i, len(down)) for i in range(len(channels))]
        widths = [in_channels, *channels]
        self.convs = nn.ModuleList(
            make_cheb_conv(c_in, c_out, K, laplacians[level], conv)
            for c_in, c_out, level in zip(widths[:-1], widths[1:], levels)
        )
        self.pools = nn.ModuleList(MeshResampling(matrix) for matrix in down)  # no weights: state_dict unchanged
        self.activation = nn.ReLU()
        coarsest = n_vertices if not down else down[-1].shape[0]
        self.to_latent = nn.Linear(coarsest * widths[-1], latent)

    def forward(self, x: Tensor) -> Tensor:
        for index, conv in enumerate(self.convs):
            precision, x = float32_region(x)  # the sparse products stay float32 under autocast
            with precision:
                x = self.activation(conv(x))
            if index < len(self.pools):
                x = self.pools[index](x)
        return self.to_latent(x.reshape(x.shape[0], -1))

