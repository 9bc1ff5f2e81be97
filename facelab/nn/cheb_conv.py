"""Chebyshev spectral graph convolution on one fixed mesh topology (paper Sec. 2.1, Eq. 1).

Every face fed to the network is registered to the same template, so the scaled Laplacian
``L = 2 L / lambda_max - I`` is a constant of the model. :class:`MeshChebConv` exploits that:
the Laplacian is turned into a sparse CSR matrix once, and the sum over the K polynomials is
computed by :mod:`facelab.nn.chebyshev_sum`, a few meshes at a time in cache-sized buffers, by
the Chebyshev recurrence on the input or Clenshaw's on the weighted terms, whichever side is
narrower. PyTorch Geometric's :class:`~torch_geometric.nn.ChebConv` instead rebuilds the
Laplacian from ``edge_index`` on every call and gathers one message per edge and per graph of
the batch; it stays selectable as the reference implementation through :class:`PygChebConv`
(``conv="pyg"``), and the two hold the same numbers (see ``tests/test_nn.py``; ``python -m
benchmarks --only cheb_layer`` measures the speed-up).

Weights are laid out so that PyG's are ported exactly: PyG's ``lins[k].weight`` (out, in) is
our ``weight[k].T``; :meth:`MeshChebConv.from_pyg` and :func:`adapt_cheb_state_dict` convert.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from facelab.nn.chebyshev_sum import ChebyshevSum, chebyshev_sum


CHEB_CONV_IMPLEMENTATIONS: tuple[str, ...] = ("fast", "pyg")

# Relative tolerance for "this matrix is symmetric" and "PyG rebuilds the same Laplacian";
# the Laplacians come in float32, whose rounding is about 6e-8 relative.
_LAPLACIAN_RTOL = 1e-5


def laplacian_to_scipy(scaled_laplacian: sp.spmatrix | sp.sparray | Tensor) -> sp.csr_matrix:
    """A scaled Laplacian given as a scipy or torch sparse (n, n) matrix, as float64 scipy CSR.

    Raises ``ValueError`` unless it is square and symmetric: the convolution's backward pass
    multiplies by ``L`` where the adjoint needs ``L^T``, which only a symmetric ``L`` allows
    (every Laplacian of an undirected mesh is symmetric).
    """
    if isinstance(scaled_laplacian, Tensor):
        coo = scaled_laplacian.detach().cpu().to_sparse_coo().coalesce()
        rows, cols = coo.indices().numpy()
        values = coo.values().double().numpy()
        matrix = sp.csr_matrix((values, (rows, cols)), shape=tuple(coo.shape))
    elif sp.issparse(scaled_laplacian):
        matrix = sp.csr_matrix(scaled_laplacian, dtype=np.float64)
    else:
        raise TypeError(f"expected a scipy or torch sparse matrix, got {type(scaled_laplacian).__name__}")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a scaled Laplacian is square (n, n), got shape {matrix.shape}")
    matrix.sum_duplicates()
    matrix.sort_indices()
    scale = abs(matrix).max() if matrix.nnz else 0.0
    if matrix.nnz and abs(matrix - matrix.T).max() > _LAPLACIAN_RTOL * scale:
        raise ValueError("the scaled Laplacian must be symmetric (the Laplacian of an undirected mesh is)")
    return matrix


def check_laplacian_shape(scaled_laplacian: sp.spmatrix | sp.sparray | Tensor, n_vertices: int) -> None:
    """Raise ``ValueError`` unless ``scaled_laplacian`` is (n_vertices, n_vertices)."""
    if tuple(scaled_laplacian.shape) != (n_vertices, n_vertices):
        shape = tuple(scaled_laplacian.shape)
        raise ValueError(f"the scaled Laplacian is {shape}, expected ({n_vertices}, {n_vertices})")


def _check_input(x: Tensor, n_vertices: int, in_channels: int) -> tuple[int, int, int]:
    if x.dim() != 3 or x.shape[1] != n_vertices or x.shape[2] != in_channels:
        raise ValueError(f"expected input (B, {n_vertices}, {in_channels}), got {tuple(x.shape)}")
    return x.shape[0], x.shape[1], x.shape[2]


class MeshChebConv(nn.Module):
    r"""Chebyshev convolution ``out = sum_k T_k(L) x W_k + b`` on a fixed mesh topology.

    ``T_0 = x``, ``T_1 = L x``, ``T_k = 2 L T_{k-1} - T_{k-2}``, where ``L`` is the scaled
    Laplacian ``2 L / lambda_max - I`` of the template (paper Eq. 1, ``K`` is the paper's ``P``).

    Args:
        in_channels: features per vertex in.
        out_channels: features per vertex out.
        K: number of Chebyshev polynomials (a vertex sees neighbours up to K-1 edges away).
        scaled_laplacian: (n, n) symmetric sparse matrix, scipy or torch (COO or CSR).
        bias: learn an additive per-channel bias.

    Shapes:
        x (B, n, in_channels) -> (B, n, out_channels), contiguous (a non-contiguous ``x`` is
        copied first).

    Parameters ``weight`` (K, in_channels, out_channels) and ``bias`` (out_channels). The
    Laplacian lives in non-persistent buffers (CSR row pointers and columns as int32, the index
    type MKL's and cuSPARSE's kernels take, so no call converts them; values): it moves with
    ``.to()`` and follows the module's dtype, but stays out of the ``state_dict`` since it is
    rebuilt from the template. It is kept as three dense buffers rather than one sparse tensor
    because ``copy.deepcopy`` cannot copy a sparse CSR tensor.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        K: int,
        scaled_laplacian: sp.spmatrix | sp.sparray | Tensor,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if K < 1:
            raise ValueError(f"K must be at least 1, got {K}")
        self.in_channels, self.out_channels, self.K = in_channels, out_channels, K
        laplacian = laplacian_to_scipy(scaled_laplacian)
        self.n_vertices = laplacian.shape[0]
        self.register_buffer("laplacian_crow", torch.as_tensor(laplacian.indptr, dtype=torch.int32), persistent=False)
        self.register_buffer("laplacian_col", torch.as_tensor(laplacian.indices, dtype=torch.int32), persistent=False)
        values = torch.as_tensor(laplacian.data, dtype=torch.get_default_dtype())
        self.register_buffer("laplacian_values", values, persistent=False)
        self.weight = nn.Parameter(torch.empty(K, in_channels, out_channels))
        self.register_parameter("bias", nn.Parameter(torch.empty(out_channels)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform over all K polynomials together (fan-in K * in_channels) and zero bias.

        PyG initialises each of the K weight matrices as if it were the only one, so the output
        variance grows about K-fold per layer: after the encoder's four layers the latent codes
        start ~100x too large and training first diverges, then collapses to the mean face.
        Treating the K terms as one layer's fan-in keeps activations at unit scale.
        """
        bound = math.sqrt(6.0 / (self.K * self.in_channels + self.out_channels))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @property
    def laplacian(self) -> Tensor:
        """The scaled Laplacian as a sparse CSR (n, n) tensor sharing the buffers' memory.

        Built once and kept until the buffers change (``.to()``, ``.double()``): building it costs
        about as much as one of the layer's small products.
        """
        stored = self._buffers
        buffers = (stored["laplacian_crow"], stored["laplacian_col"], stored["laplacian_values"])
        cached = self.__dict__.get("_laplacian")
        if cached is not None and all(a is b for a, b in zip(cached[0], buffers)):
            return cached[1]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            matrix = torch.sparse_csr_tensor(
                *buffers,
                (self.n_vertices, self.n_vertices),
                check_invariants=False,  # checked once, when the buffers were built
            )
        self.__dict__["_laplacian"] = (buffers, matrix)
        return matrix

    def __getstate__(self) -> dict:
        # copy.deepcopy and pickle cannot copy a sparse CSR tensor: the copy rebuilds its own.
        state = self.__dict__.copy()
        state.pop("_laplacian", None)
        return state

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.n_vertices, self.in_channels)
        x = x.contiguous()
        weight, bias = self.weight, self.bias
        if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                        or (bias is not None and bias.requires_grad)):
            return ChebyshevSum.apply(x, weight, bias, self.laplacian)
        return chebyshev_sum(x, weight, bias, self.laplacian)

    @classmethod
    def from_pyg(cls, conv: nn.Module, scaled_laplacian: sp.spmatrix | sp.sparray | Tensor) -> MeshChebConv:
        """A MeshChebConv with the weights of a ``torch_geometric.nn.ChebConv``.

        The result computes what ``conv`` computes when PyG's internal scaled Laplacian equals
        ``scaled_laplacian`` (PyG builds it from the ``edge_index``, ``normalization`` and
        ``lambda_max`` it is called with; :class:`PygChebConv` shows how to make them agree).
        """
        lins = conv.lins
        out_channels, in_channels = lins[0].weight.shape
        layer = cls(in_channels, out_channels, len(lins), scaled_laplacian, bias=conv.bias is not None)
        layer.to(dtype=lins[0].weight.dtype, device=lins[0].weight.device)
        with torch.no_grad():
            layer.weight.copy_(torch.stack([lin.weight.T for lin in lins]))
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"{self.in_channels}, {self.out_channels}, K={self.K}, n_vertices={self.n_vertices}, bias={bias}"


class PygChebConv(nn.Module):
    """PyG's ``ChebConv`` on a batch of meshes sharing one topology: the reference implementation.

    The batch is presented to PyG as one big graph of ``B`` disjoint copies of the template
    (``edge_index`` repeated with vertex offsets, as a PyG ``DataLoader`` would build it; the
    batched index is cached per batch size). PyG is handed the mesh graph, its normalisation
    and ``lambda_max`` such that its own ``__norm__`` rebuilds the given scaled Laplacian; this
    is verified at construction (see :func:`pyg_graph_of`).

    Shapes: x (B, n, in_channels) -> (B, n, out_channels).
    Parameters are PyG's, under ``conv.``: ``conv.lins.{k}.weight`` (out, in), ``conv.bias``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        K: int,
        scaled_laplacian: sp.spmatrix | sp.sparray | Tensor,
        bias: bool = True,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import ChebConv

        laplacian = laplacian_to_scipy(scaled_laplacian)
        self.in_channels, self.out_channels, self.K = in_channels, out_channels, K
        self.n_vertices = laplacian.shape[0]
        edge_index, normalization, lambda_max = pyg_graph_of(laplacian)
        self.conv = ChebConv(in_channels, out_channels, K, normalization=normalization, bias=bias)
        self.lambda_max = lambda_max
        self.register_buffer("edge_index", edge_index, persistent=False)
        self._batched: tuple[tuple[int, torch.device], Tensor] | None = None

    def _batched_edge_index(self, batch: int) -> Tensor:
        key = (batch, self.edge_index.device)
        if self._batched is None or self._batched[0] != key:
            offsets = torch.arange(batch, device=self.edge_index.device) * self.n_vertices
            edges = (self.edge_index.unsqueeze(1) + offsets.view(1, batch, 1)).reshape(2, -1)
            self._batched = (key, edges)
        return self._batched[1]

    def forward(self, x: Tensor) -> Tensor:
        batch, n_vertices, channels = _check_input(x, self.n_vertices, self.in_channels)
        nodes = x.reshape(batch * n_vertices, channels)
        out = self.conv(nodes, self._batched_edge_index(batch), lambda_max=self.lambda_max)
        return out.view(batch, n_vertices, self.out_channels)

    def extra_repr(self) -> str:
        return f"n_vertices={self.n_vertices}, lambda_max={self.lambda_max:.6g}"


def pyg_graph_of(scaled_laplacian: sp.spmatrix | sp.sparray | Tensor) -> tuple[Tensor, str | None, float]:
    """The ``(edge_index, normalization, lambda_max)`` from which PyG's ChebConv rebuilds a Laplacian.

    PyG's ``ChebConv.__norm__`` computes ``2 L / lambda_max - I`` itself, from unit edge weights,
    with ``L = D - A`` for ``normalization=None`` or ``L = I - D^-1/2 A D^-1/2`` for ``"sym"``.
    The edges are the off-diagonal pattern of the given matrix, and ``lambda_max`` is read back
    from it: the off-diagonal value ``-2 / lambda_max`` (combinatorial), or the diagonal value
    ``2 / lambda_max - 1`` (normalised). The candidate whose rebuilt Laplacian, computed by PyG
    itself, matches is returned; ``ValueError`` if neither does (a weighted Laplacian, or a
    normalised one with isolated vertices, to which PyG gives a diagonal of 1 and facelab 0).
    """
    from torch_geometric.nn import ChebConv

    laplacian = laplacian_to_scipy(scaled_laplacian)
    n_vertices = laplacian.shape[0]
    off_diagonal = sp.triu(laplacian, k=1) + sp.tril(laplacian, k=-1)
    off_diagonal = off_diagonal.tocoo()
    off_diagonal.eliminate_zeros()
    if off_diagonal.nnz == 0:
        raise ValueError("the scaled Laplacian has no edges")
    edge_index = torch.as_tensor(np.vstack([off_diagonal.row, off_diagonal.col]), dtype=torch.int64)
    diagonal = laplacian.diagonal()
    candidates = (
        (None, -2.0 / float(np.median(off_diagonal.data))),
        ("sym", 2.0 / (float(np.median(diagonal)) + 1.0)),
    )
    scale = abs(laplacian).max()
    for normalization, lambda_max in candidates:
        if not math.isfinite(lambda_max) or lambda_max <= 0:
            continue
        probe = ChebConv(1, 1, 1, normalization=normalization)
        index, weight = probe.__norm__(edge_index, n_vertices, None, normalization, lambda_max, dtype=torch.float64)
        rebuilt = sp.csr_matrix((weight.numpy(), tuple(index.numpy())), shape=laplacian.shape)
        if abs(rebuilt - laplacian).max() <= _LAPLACIAN_RTOL * scale:
            return edge_index, normalization, lambda_max
    raise ValueError(
        "PyG's ChebConv cannot rebuild this scaled Laplacian from the mesh graph: expected the "
        "combinatorial (D - A) or normalised (I - D^-1/2 A D^-1/2) Laplacian of an unweighted graph "
        "without isolated vertices"
    )


def make_cheb_conv(
    in_channels: int,
    out_channels: int,
    K: int,
    scaled_laplacian: sp.spmatrix | sp.sparray | Tensor,
    conv: str = "fast",
    bias: bool = True,
) -> MeshChebConv | PygChebConv:
    """A Chebyshev layer of the chosen implementation: ``"fast"`` (ours) or ``"pyg"`` (reference)."""
    if conv == "fast":
        return MeshChebConv(in_channels, out_channels, K, scaled_laplacian, bias=bias)
    if conv == "pyg":
        return PygChebConv(in_channels, out_channels, K, scaled_laplacian, bias=bias)
    expected = ", ".join(CHEB_CONV_IMPLEMENTATIONS)
    raise ValueError(f"unknown Chebyshev implementation {conv!r}: expected one of {expected}")


def adapt_cheb_state_dict(state_dict: Mapping[str, Tensor], target: nn.Module) -> dict[str, Tensor]:
    """``state_dict`` with each Chebyshev layer's entries in the layout ``target`` expects.

    Lets weights trained with one implementation load into a model built with the other:
    ``target.load_state_dict(adapt_cheb_state_dict(source.state_dict(), target))``. For every
    :class:`MeshChebConv` / :class:`PygChebConv` of ``target`` (found by module name), entries
    in the other layout are converted (``weight[k] == conv.lins.{k}.weight.T``); every other
    entry is passed through unchanged.
    """
    adapted = dict(state_dict)
    for name, module in target.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, MeshChebConv) and f"{prefix}conv.lins.0.weight" in adapted:
            weights = [adapted.pop(f"{prefix}conv.lins.{k}.weight") for k in range(module.K)]
            adapted[f"{prefix}weight"] = torch.stack([w.T for w in weights])
            if f"{prefix}conv.bias" in adapted:
                adapted[f"{prefix}bias"] = adapted.pop(f"{prefix}conv.bias")
        elif isinstance(module, PygChebConv) and f"{prefix}weight" in adapted:
            weight = adapted.pop(f"{prefix}weight")
            for k in range(weight.shape[0]):
                adapted[f"{prefix}conv.lins.{k}.weight"] = weight[k].T.contiguous()
            if f"{prefix}bias" in adapted:
                adapted[f"{prefix}conv.bias"] = adapted.pop(f"{prefix}bias")
    return adapted
