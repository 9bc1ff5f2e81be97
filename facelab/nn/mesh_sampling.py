"""Mesh pooling and unpooling (CoMA): a fixed sparse matrix applied to every mesh of a batch.

``MeshResampling(matrix)`` maps features on one template level (B, n_in, F) to another
(B, n_out, F) by ``matrix`` (n_out, n_in): a downsampling matrix pools the encoder's features
onto a coarser template, an upsampling matrix spreads the decoder's back onto a finer one (see
:mod:`facelab.mesh.hierarchy`). As in the Chebyshev layers, the batch is folded into the columns
so that one sparse product serves it, and the product runs in float32 under autocast.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from facelab.nn.precision import float32_region


def _csr_tensor(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class _SparseProduct(torch.autograd.Function):
    """``M @ x`` for a constant sparse M, with the backward ``M^T @ grad`` from a stored M^T
    (autograd would transpose the CSR matrix, a sort of its entries, at every step)."""

    @staticmethod
    def forward(ctx, x: Tensor, matrix: Tensor, transposed: Tensor) -> Tensor:  # type: ignore[override]
        ctx.transposed = transposed
        return torch.mm(matrix, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        return torch.mm(ctx.transposed, grad), None, None


class MeshResampling(nn.Module):
    """Features on one template level -> another, by a fixed (n_out, n_in) sparse matrix.

    The matrix and its transpose live in non-persistent buffers (CSR row pointers, columns,
    values): rebuilt from the template hierarchy, they stay out of the ``state_dict``.

    Shapes: x (B, n_in, F) -> (B, n_out, F), a transposed view (use ``reshape``).
    """

    def __init__(self, matrix: sp.spmatrix | sp.sparray) -> None:
        super().__init__()
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        matrix.sort_indices()
        self.n_out, self.n_in = matrix.shape
        transposed = matrix.T.tocsr()
        transposed.sort_indices()
        for name, m in (("matrix", matrix), ("transposed", transposed)):
            self.register_buffer(f"{name}_crow", torch.as_tensor(m.indptr, dtype=torch.int64), persistent=False)
            self.register_buffer(f"{name}_col", torch.as_tensor(m.indices, dtype=torch.int64), persistent=False)
            self.register_buffer(f"{name}_values", torch.as_tensor(m.data, dtype=torch.float32), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, n_in, channels = x.shape
        if n_in != self.n_in:
            raise ValueError(f"expected features on {self.n_in} vertices, got {tuple(x.shape)}")
        precision, x = float32_region(x)
        with precision:
            matrix = _csr_tensor(self.matrix_crow, self.matrix_col, self.matrix_values.to(x.dtype),
                                 (self.n_out, self.n_in))
            transposed = _csr_tensor(self.transposed_crow, self.transposed_col,
                                     self.transposed_values.to(x.dtype), (self.n_in, self.n_out))
            rows = x.transpose(0, 1).reshape(n_in, batch * channels)
            out = _SparseProduct.apply(rows, matrix, transposed)
        return out.view(self.n_out, batch, channels).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"{self.n_in} -> {self.n_out} vertices"
