"""A fully connected layer with few inputs and very many outputs, fast at inference on the CPU."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class WideLinear(nn.Linear):
    """:class:`torch.nn.Linear` for layers like the decoder's ``latent -> vertices x channels``.

    Its parameters and state dict are ``nn.Linear``'s, in the ``(out, in)`` layout. Neutralising
    one face reads the whole weight (16 MB at 5,023 vertices); in that layout each output is a dot
    product of ``in`` (25) numbers, which the CPU's matrix product runs about 3x slower than a
    pass over a contiguous ``(in, out)`` copy (1.27 against 0.41 ms at 160,736 outputs on 2
    cores). So outside autograd on the CPU the layer keeps that copy, and makes it again whenever
    the weight has changed (an optimiser step, a loaded state dict, a move or a cast). A write
    through ``weight.data`` bypasses the weight's version counter: write the weight itself, under
    ``torch.no_grad()``, as PyTorch recommends.

    Args:
        in_features: size of each input.
        out_features: size of each output.
        bias: learn an additive bias.

    Shapes: x (*, in_features) -> (*, out_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kwargs) -> None:
        super().__init__(in_features, out_features, bias, **kwargs)
        self._transposed: Tensor | None = None
        self._transposed_of: tuple | None = None

    def _apply(self, fn, *args, **kwargs):
        self._transposed = self._transposed_of = None  # moved or cast: made again from the new weight
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state["_transposed"] = state["_transposed_of"] = None  # a copy or a pickle makes its own
        return state

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight
        if weight.device.type != "cpu" or (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad)):
            return super().forward(x)
        version = (weight.data_ptr(), weight._version, weight.dtype)
        if self._transposed_of != version:
            self._transposed = weight.detach().t().contiguous()
            self._transposed_of = version
        flat = x.reshape(-1, self.in_features)
        out = flat @ self._transposed if self.bias is None else torch.addmm(self.bias, flat, self._transposed)
        return out.view(*x.shape[:-1], self.out_features)
