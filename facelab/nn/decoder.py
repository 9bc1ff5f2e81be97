"""The mesh decoder ``Dec`` (paper Sec. 3): a fully connected layer and four Chebyshev layers."""

from __future__ import annotations

from collections.abc import Sequence

import scipy.sparse as sp
from torch import Tensor, nn

from facelab.nn.cheb_conv import check_laplacian_shape, make_cheb_conv
from facelab.nn.mesh_sampling import MeshResampling
from facelab.nn.precision import float32_region
from facelab.nn.wide_linear import WideLinear


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

        coarse_laplacians: optional CoMA-style upsampling, the mirror of the encoder's
            downsampling: the scaled Laplacians of template levels 1..L, and ``up`` the L
            unpooling matrices (level i + 1 -> i, (n_i, n_{i+1})). The FC layer outputs level L;
            layer j runs on level min(J - 1 - j, L) of J layers, each preceded by the unpooling
            that reaches it, so the last layer is on the full template. Empty: the paper's.

    Shapes: z (B, latent) -> x (B, n, channels[-1]), contiguous.

    Under autocast the Chebyshev layers and the unpooling run in float32 (see
    :mod:`facelab.nn.precision`); the fully connected layer follows autocast.
    """

    def __init__(
        self,
        scaled_laplacian: sp.spmatrix | sp.sparray | Tensor,
        n_vertices: int,
        latent: int = 25,
        channels: Sequence[int] = (32, 16, 16, 3),
        K: int = 6,
        conv: str = "fast",
        coarse_laplacians: Sequence[sp.spmatrix | sp.sparray | Tensor] = (),
        up: Sequence[sp.spmatrix | sp.sparray] = (),
    ) -> None:
        super().__init__()
        check_laplacian_shape(scaled_laplacian, n_vertices)
        if len(coarse_laplacians) != len(up) or len(up) > len(channels):
            raise ValueError(f"upsampling needs one Laplacian and one unpooling matrix per level, at most one level "
                             f"per layer ({len(channels)}); got {len(coarse_laplacians)} and {len(up)}")
        self.n_vertices, self.latent = n_vertices, latent
        self.first_channels = channels[0]
        coarsest = n_vertices if not up else up[-1].shape[1]
        self.coarsest_vertices = coarsest
        self.from_latent = WideLinear(latent, coarsest * channels[0])
        laplacians = [scaled_laplacian, *coarse_laplacians]
        self.levels = [min(len(channels) - 1 - j, len(up)) for j in range(len(channels))]
        widths = [channels[0], *channels]
        self.convs = nn.ModuleList(
            make_cheb_conv(c_in, c_out, K, laplacians[level], conv)
            for c_in, c_out, level in zip(widths[:-1], widths[1:], self.levels)
        )
        self.unpools = nn.ModuleList(MeshResampling(matrix) for matrix in up)  # unpools[i]: level i + 1 -> i
        self.activation = nn.ReLU()

    def forward(self, z: Tensor) -> Tensor:
        x = self.from_latent(z).view(z.shape[0], self.coarsest_vertices, self.first_channels)
        level = len(self.unpools)
        for index, conv in enumerate(self.convs):
            while level > self.levels[index]:
                level -= 1
                x = self.unpools[level](x)
            precision, x = float32_region(x)  # the sparse products stay float32 under autocast
            with precision:
                x = conv(x)
            if index < len(self.convs) - 1:
                x = self.activation(x)
        return x.contiguous()  # callers rely on a contiguous output, whichever layer made it
