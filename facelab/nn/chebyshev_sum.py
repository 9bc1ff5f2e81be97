"""``sum_k T_k(L) x_b W_k + bias`` for every mesh ``x_b`` of a batch, and its gradients, in CPU caches.

The kernel behind :class:`~facelab.nn.cheb_conv.MeshChebConv`. Three facts shape it:

* **Which side the recurrence runs on.** ``sum_k T_k(L) X W_k`` is the Chebyshev recurrence run on
  ``X`` (``in`` channels wide), each term weighted as it comes, or Clenshaw's recurrence run on
  the weighted terms (``out`` wide): ``c_k = X W_k + 2 L c_{k+1} - c_{k+2}``, the sum being
  ``X W_0 + L c_1 - c_2``. The forward runs on the narrower side. The backward needs ``T_k(L) G``
  of the output gradient ``G`` (``L`` is symmetric): ``dW_k = X^T T_k(L) G`` and ``dX = sum_k
  T_k(L) G W_k^T``, one recurrence serving both; when ``dX`` is not needed (the network's input)
  and ``in < out``, ``dW_k = (T_k(L) X)^T G`` runs on the narrower ``X`` instead. The forward
  keeps nothing but ``x`` for the backward.
* **Small working sets.** The batch goes through a group of meshes at a time (one mesh of 16
  channels on one thread, four on two), so that the recurrence's two or three buffers (~0.3 MB
  per mesh at 5,023 vertices and 16 channels) stay in the cores' L2 caches for all K - 1 steps
  instead of streaming every term through memory. Each step is one in-place sparse ``addmm_``
  (``C = beta C + alpha L A``), which MKL runs without the zero-fill and copy of an out-of-place
  product, and one dense product over the whole group. The weight gradients, reductions over
  the vertices that MKL does not spread over threads, are computed two terms at a time as one
  batched product, which it does.
* **What MKL's sparse product likes.** A product over 3 or 4 columns costs about as much as one
  over 8, its cost per column levels off at about 16, and a column count that is not a multiple
  of 4 takes a path 2-3x slower: a narrow recurrence groups more meshes, each padded to a
  multiple of 4 columns (the padding stays zero and never reaches a result: every column of a
  sparse product is independent).

A group's meshes sit side by side in vertex-major ``(n, meshes * F)`` buffers, gathered from
and scattered back to the batch-major ``(B, n, F)`` tensors; a group of one mesh without padding
works on the batch's own memory, with no copy at all. On a GPU the whole batch is one group.
Layout: ``x`` (B, n, in) contiguous in, (B, n, out) contiguous out.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn.functional import pad

#: Columns of the recurrence a group of meshes fills (where the batch allows). On one thread, one
#: mesh of 16 channels: its buffers (~0.3 MB each at 5,023 vertices) fit in L2 with its input. On
#: more, each product's rows are shared between the threads, and 32 columns per thread (four such
#: meshes on two) measured fastest: more work per parallel region, two meshes per core's cache.
GROUP_COLUMNS_SINGLE_THREAD = 16
GROUP_COLUMNS_PER_THREAD = 32
#: Each mesh's columns in a recurrence buffer are padded to a multiple of this.
COLUMN_ALIGNMENT = 4
#: Below this many output channels the forward's dense products are written afresh and then added:
#: a product accumulated into so few columns takes a path several times slower.
NARROW_OUTPUT = 8


def _padded(width: int) -> int:
    """A mesh's columns in a recurrence buffer of ``width`` channels."""
    return math.ceil(width / COLUMN_ALIGNMENT) * COLUMN_ALIGNMENT


class _Group:
    """Meshes ``start:stop`` of a batch, side by side in vertex-major buffers.

    A recurrence buffer is (n, count * stride): vertex v's row holds each mesh's ``stride``
    columns, of which the first ``width`` are its channels (the rest zero). ``rows`` views it as
    (n * count, stride) for the dense products. A buffer of another width (the side the
    recurrence does not run on) is (n * count, F), unpadded.
    """

    def __init__(self, start: int, stop: int, width: int) -> None:
        self.start, self.stop, self.count = start, stop, stop - start
        self.stride = _padded(width)
        #: One mesh, no padding: the group's buffers can be the batch tensors' own meshes.
        self.direct = self.count == 1 and self.stride == width

    def gather(self, x: Tensor, buffer: Tensor, stride: int | None = None) -> Tensor:
        """The group's meshes of ``x`` (B, n, F) in ``buffer`` (n, count * stride), stride F by
        default; ``x``'s own mesh, as (n, F), where no copy is needed."""
        channels = x.shape[2]
        stride = channels if stride is None else stride
        if self.count == 1 and stride == channels:
            return x[self.start]
        n_vertices = x.shape[1]
        buffer.view(n_vertices, self.count, stride)[:, :, :channels].copy_(x[self.start:self.stop].transpose(0, 1))
        return buffer

    def scatter(self, buffer: Tensor, out: Tensor, stride: int | None = None) -> None:
        """Copy ``buffer`` (n, count * stride) into the group's meshes of ``out`` (B, n, F)."""
        channels, n_vertices = out.shape[2], out.shape[1]
        stride = channels if stride is None else stride
        out[self.start:self.stop].copy_(buffer.view(n_vertices, self.count, stride)[:, :, :channels].transpose(0, 1))

    def rows(self, buffer: Tensor) -> Tensor:
        """A buffer (n, count * F) as (n * count, F): one row per vertex and mesh."""
        return buffer if self.count == 1 else buffer.view(-1, buffer.shape[1] // self.count)


def _groups(batch: int, width: int, device: torch.device) -> list[_Group]:
    """The batch cut into groups for a recurrence ``width`` channels wide (see the module docstring)."""
    if device.type != "cpu":
        meshes = batch
    else:
        threads = torch.get_num_threads()
        columns = GROUP_COLUMNS_SINGLE_THREAD if threads == 1 else GROUP_COLUMNS_PER_THREAD * threads
        meshes = min(batch, max(1, math.ceil(columns / _padded(width))))
    return [_Group(start, min(start + meshes, batch), width) for start in range(0, batch, meshes)]


class _Scratch:
    """Buffers reused by every group of a call: a ``pair`` (2, n, meshes * width) for the
    recurrence, and one (n, meshes * width) buffer per further ``(width, zeroed)`` given.

    A last, smaller group takes contiguous views at their start. Zeroed buffers (those with
    padding) are zeroed again when the smaller group lays them out anew: the padding columns then
    stay zero through every product (rather than holding stale values, or denormals that would
    slow the arithmetic).
    """

    def __init__(self, like: Tensor, groups: list[_Group], width: int, zeroed: bool,
                 others: list[tuple[int, bool]]) -> None:
        self.n_vertices, self.count = like.shape[1], groups[0].count
        self.widths = [width] + [other for other, _ in others]
        self.zeroed = [zeroed] + [zero for _, zero in others]
        size = self.n_vertices * self.count
        self.flat = [(like.new_zeros if zero else like.new_empty)(shape) for shape, zero in
                     zip([(2, size * width)] + [(size * other,) for other, _ in others], self.zeroed)]

    def buffers(self, group: _Group) -> tuple[Tensor, list[Tensor]]:
        """The group's (2, n, count * width) pair and its further (n, count * width) buffers."""
        if group.count != self.count:
            self.count = group.count
            for flat, zero in zip(self.flat, self.zeroed):
                if zero:
                    flat.zero_()
        n_vertices, count = self.n_vertices, self.count
        pair = self.flat[0][:, :n_vertices * count * self.widths[0]].view(2, n_vertices, count * self.widths[0])
        return pair, [flat[:n_vertices * count * width].view(n_vertices, count * width)
                      for flat, width in zip(self.flat[1:], self.widths[1:])]


def _chebyshev_terms(first: Tensor, owned: bool, laplacian: Tensor, n_terms: int, pair: Tensor):
    """Yield ``T_0(L) A, ..., T_{n_terms-1}(L) A`` for A = ``first`` (n, C), each valid until the next.

    ``T_k = 2 L T_{k-1} - T_{k-2}`` in place in the buffer of ``T_{k-2}``: odd k in ``pair[0]``,
    even k >= 2 in ``pair[1]`` (so that ``T_{k-1}`` and ``T_k``, for even k, are ``pair``
    itself); ``first`` must be ``pair[1]`` when ``owned`` (it is then overwritten).
    """
    yield first
    if n_terms == 1:
        return
    odd, even = pair[0], pair[1]
    # beta=0: the buffer's old contents are ignored (not multiplied by zero), as in torch.addmm.
    yield odd.addmm_(laplacian, first, beta=0)
    for k in range(2, n_terms):
        if k % 2:
            yield odd.addmm_(laplacian, even, beta=-1, alpha=2)
        else:
            if k == 2 and not owned:
                even.copy_(first)
            yield even.addmm_(laplacian, odd, beta=-1, alpha=2)


def _weight_gradients(k: int, n_terms: int, left: Tensor, term: Tensor, pair: Tensor, gradients: Tensor) -> None:
    """Accumulate ``gradients[k] += left^T term`` (term ``T_k`` from :func:`_chebyshev_terms`,
    rows (n * count, F)), pairing odd and even k into one batched product.

    A product of this shape, (F x n) @ (n x F), is a reduction over the vertices, which MKL runs
    no faster on two threads than on one (it measured slower); a batch of two runs one on each.
    """
    if k == 0 or (k % 2 and k == n_terms - 1):
        gradients[k].addmm_(left.T, term)
    elif k % 2 == 0:
        terms = pair.view(2, -1, term.shape[1])
        gradients[k - 1:k + 1].baddbmm_(left.T.expand(2, *left.T.shape), terms)


def _clenshaw(x_rows: Tensor, weights: list[Tensor], laplacian: Tensor, group: _Group, chain: list[Tensor]) -> Tensor:
    """``sum_k T_k(L) X W_k`` for one group by Clenshaw's recurrence; ``x_rows`` (n * count, in).

    ``c_{K-1} = X W_{K-1}``, ``c_k = X W_k + 2 L c_{k+1} - c_{k+2}``, and the sum is
    ``X W_0 + L c_1 - c_2``: each step one in-place sparse product into the buffer of ``c_{k+2}``
    and one accumulated dense product. With a third buffer (narrow outputs), each ``X W_k`` is
    written into it and then added. Returns the buffer, of the first two, that holds the sum.
    """
    added = len(chain) == 3
    rows = [group.rows(buffer) for buffer in chain]
    torch.mm(x_rows, weights[-1], out=rows[0])
    high, low = -1, 0  # the buffers of c_{k+2} and c_{k+1}
    for k in range(len(weights) - 2, -1, -1):
        alpha = 2.0 if k > 0 else 1.0
        if high < 0:
            step = 1
            chain[1].addmm_(laplacian, chain[0], beta=0, alpha=alpha)
        else:
            step = high
            chain[high].addmm_(laplacian, chain[low], beta=-1, alpha=alpha)
        if added:
            torch.mm(x_rows, weights[k], out=rows[2])
            chain[step].add_(chain[2])
        else:
            rows[step].addmm_(x_rows, weights[k])
        high, low = low, step
    return chain[low]


def chebyshev_sum(x: Tensor, weight: Tensor, bias: Tensor | None, laplacian: Tensor) -> Tensor:
    """``out_b = sum_k T_k(L) x_b W_k + bias`` without autograd: x (B, n, in) -> (B, n, out).

    Also the forward of :class:`ChebyshevSum`. ``weight`` (K, in, out); ``laplacian`` a sparse
    (n, n) symmetric matrix. ``x`` must be contiguous.
    """
    out = x.new_empty(x.shape[0], x.shape[1], weight.shape[2])
    if weight.shape[2] <= weight.shape[1]:
        _forward_on_output(x, weight, bias, laplacian, out)
    else:
        _forward_on_input(x, weight, bias, laplacian, out)
    return out


def _forward_on_output(x: Tensor, weight: Tensor, bias: Tensor | None, laplacian: Tensor, out: Tensor) -> None:
    """The forward by Clenshaw's recurrence on the weighted terms, ``out`` channels wide."""
    batch, n_vertices, in_channels = x.shape
    n_terms, _, out_channels = weight.shape
    groups = _groups(batch, out_channels, x.device)
    stride = groups[0].stride
    narrow = out_channels < NARROW_OUTPUT
    padding = stride != out_channels
    weights = list((pad(weight, (0, stride - out_channels)) if padding else weight).unbind(0))  # zero padding
    scratch = _Scratch(x, groups, stride, padding, [(stride, padding)] * narrow + [(in_channels, False)])
    for group in groups:
        pair, (*temporary, x_buffer) = scratch.buffers(group)
        buffers = [pair[0], pair[1], *temporary]
        if group.direct:
            # Start in the buffer the sum ends in, so that it ends in the output itself.
            buffers[(n_terms - 1) % 2] = out[group.start]
        result = _clenshaw(group.rows(group.gather(x, x_buffer)), weights, laplacian, group, buffers)
        if bias is not None:
            (result if group.direct else result.view(n_vertices, group.count, stride)[:, :, :out_channels]).add_(bias)
        if not group.direct:
            group.scatter(result, out, stride)


def _forward_on_input(x: Tensor, weight: Tensor, bias: Tensor | None, laplacian: Tensor, out: Tensor) -> None:
    """The forward by the Chebyshev recurrence on x itself, ``in`` channels wide, each term
    weighted as it comes."""
    batch, n_vertices, in_channels = x.shape
    n_terms, _, out_channels = weight.shape
    groups = _groups(batch, in_channels, x.device)
    stride = groups[0].stride
    weights = list((pad(weight, (0, 0, 0, stride - in_channels)) if stride != in_channels else weight).unbind(0))
    scratch = _Scratch(x, groups, stride, stride != in_channels, [(out_channels, False)])
    for group in groups:
        pair, (out_buffer,) = scratch.buffers(group)
        first = group.gather(x, pair[1], stride)
        out_rows = group.rows(out[group.start] if group.count == 1 else out_buffer)
        for k, term in enumerate(_chebyshev_terms(first, not group.direct, laplacian, n_terms, pair)):
            if k == 0:
                torch.mm(group.rows(term), weights[0], out=out_rows)
            else:
                out_rows.addmm_(group.rows(term), weights[k])
        if bias is not None:
            out_rows.add_(bias)
        if group.count > 1:
            group.scatter(out_buffer, out)


class ChebyshevSum(torch.autograd.Function):
    """:func:`chebyshev_sum` with a hand-written backward (see the module docstring).

    Left to autograd, each of the 2K - 1 products of the recurrence would be its own graph node
    holding its own (B, n, F) tensor, and every sparse step of the backward would transpose the
    CSR matrix (a sort of its entries). Here the forward keeps only ``x``, and the backward runs
    one recurrence per group in cache-resident buffers, as the forward does.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None,  # type: ignore[override]
                laplacian: Tensor) -> Tensor:
        ctx.laplacian, ctx.has_bias = laplacian, bias is not None
        ctx.save_for_backward(x, weight)
        return chebyshev_sum(x, weight, bias, laplacian)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        need_x, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_bias = ctx.has_bias and ctx.needs_input_grad[2]
        grad_out = grad_out.contiguous()
        grad_x = torch.empty_like(x) if need_x else None
        grad_weight = torch.zeros_like(weight) if need_weight else None
        # Only dW wanted, and x the narrower side: the recurrence runs on x (see the module docstring).
        on_input = not need_x and weight.shape[1] < weight.shape[2]
        if need_x or (need_weight and not on_input):
            grad_bias = grad_out.new_zeros(weight.shape[2]) if need_bias else None
            _backward_on_output(x, weight, grad_out, ctx.laplacian, grad_x, grad_weight, grad_bias)
        else:
            if need_weight:
                _weight_gradient_on_input(x, grad_out, ctx.laplacian, grad_weight)
            grad_bias = grad_out.sum((0, 1)) if need_bias else None
        return grad_x, grad_weight, grad_bias, None


def _backward_on_output(x: Tensor, weight: Tensor, grad_out: Tensor, laplacian: Tensor, grad_x: Tensor | None,
                        grad_weight: Tensor | None, grad_bias: Tensor | None) -> None:
    """Fill ``grad_x`` (B, n, in) and accumulate into ``grad_weight`` (K, in, out) and ``grad_bias``
    (out), any may be None, from one recurrence on ``G`` per group: ``T_k(L) G`` for
    ``dW_k = X^T T_k(L) G`` and ``dX = sum_k T_k(L) G W_k^T``; ``db`` sums ``G`` while it is in
    cache."""
    batch, n_vertices, in_channels = x.shape
    n_terms, _, out_channels = weight.shape
    groups = _groups(batch, out_channels, x.device)
    stride = groups[0].stride
    padded_weight = pad(weight, (0, stride - out_channels)) if stride != out_channels else weight
    transposed = list(padded_weight.transpose(1, 2).unbind(0))  # (stride, in), zero rows for the padding
    gradients = None
    if grad_weight is not None:
        gradients = grad_weight if stride == out_channels else grad_weight.new_zeros(n_terms, in_channels, stride)
    scratch = _Scratch(x, groups, stride, stride != out_channels, [(in_channels, False)] * 2)
    for group in groups:
        pair, (x_buffer, grad_x_buffer) = scratch.buffers(group)
        first = group.gather(grad_out, pair[1], stride)
        if grad_bias is not None:
            grad_bias.add_(group.rows(first).sum(0)[:out_channels])
        x_rows = None if gradients is None else group.rows(group.gather(x, x_buffer))
        grad_x_rows = None
        if grad_x is not None:
            grad_x_rows = group.rows(grad_x[group.start] if group.count == 1 else grad_x_buffer)
        for k, term in enumerate(_chebyshev_terms(first, not group.direct, laplacian, n_terms, pair)):
            term_rows = group.rows(term)
            if gradients is not None:
                _weight_gradients(k, n_terms, x_rows, term_rows, pair, gradients)
            if grad_x_rows is not None:
                if k == 0:
                    torch.mm(term_rows, transposed[0], out=grad_x_rows)
                else:
                    grad_x_rows.addmm_(term_rows, transposed[k])
        if grad_x is not None and group.count > 1:
            group.scatter(grad_x_buffer, grad_x)
    if gradients is not None and gradients is not grad_weight:
        grad_weight.copy_(gradients[:, :, :out_channels])


def _weight_gradient_on_input(x: Tensor, grad_out: Tensor, laplacian: Tensor, grad_weight: Tensor) -> None:
    """Accumulate into ``grad_weight`` (K, in, out) from one recurrence on ``x`` per group:
    ``dW_k = (T_k(L) X)^T G``, when ``x`` is narrower and needs no gradient itself."""
    batch, n_vertices, in_channels = x.shape
    n_terms, _, out_channels = grad_weight.shape
    groups = _groups(batch, in_channels, x.device)
    stride = groups[0].stride
    gradients = grad_weight if stride == in_channels else grad_weight.new_zeros(n_terms, stride, out_channels)
    scratch = _Scratch(x, groups, stride, stride != in_channels, [(out_channels, False)])
    transposed = gradients.transpose(1, 2)  # (K, out, stride): accumulated as G^T T_k
    for group in groups:
        pair, (grad_buffer,) = scratch.buffers(group)
        first = group.gather(x, pair[1], stride)
        grad_rows = group.rows(group.gather(grad_out, grad_buffer))
        for k, term in enumerate(_chebyshev_terms(first, not group.direct, laplacian, n_terms, pair)):
            _weight_gradients(k, n_terms, grad_rows, group.rows(term), pair, transposed)
    if gradients is not grad_weight:
        grad_weight.copy_(gradients[:, :in_channels])
