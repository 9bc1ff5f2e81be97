"""Layers that must run in float32 even inside a mixed-precision (autocast) region.

The Chebyshev layers' sparse products are recursive (T_k = 2 L T_{k-1} - T_{k-2}): in bfloat16
(8-bit mantissa) the rounding of each product feeds the next, and PyTorch's sparse CSR kernels do
not take bfloat16 on every device anyway. The encoder and decoder therefore run each Chebyshev
layer through :func:`float32_region`; the fully connected layers stay under autocast.
"""

from __future__ import annotations

import contextlib

import torch


def float32_region(x: torch.Tensor) -> tuple[contextlib.AbstractContextManager, torch.Tensor]:
    """A context that leaves autocast, and ``x`` in float32, for layers that need full precision.

    Outside autocast nothing changes: the context is a no-op and ``x`` is returned as it is.
    """
    device_type = x.device.type
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext(), x
    return torch.autocast(device_type=device_type, enabled=False), x.float()
