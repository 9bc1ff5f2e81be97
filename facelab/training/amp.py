"""Mixed precision (``--amp bf16``): the dense layers in bfloat16, the sparse products in float32.

bfloat16 keeps float32's exponent range, so no loss scaling is needed (float16 would need a
GradScaler and is not offered). Under :func:`autocast` the fully connected layers (the encoder's
and decoder's hold ~21M weights each at 26,317 vertices) and the small generator, discriminator
and recognizer run in bfloat16; the Chebyshev layers leave autocast and run in float32
(:func:`facelab.nn.precision.float32_region`, used by the encoder and decoder), because each of their K sparse
products adds to the previous one's result (T_k = 2 L T_{k-1} - T_{k-2}), and bfloat16's 8-bit
mantissa would compound its rounding over the recursion. Weights, gradients and the optimiser
state stay float32 throughout.

Where it helps: on GPUs with bfloat16 tensor cores (Ampere and newer) and on CPUs with
AVX512-BF16 or AMX. Elsewhere on CPU it is emulated and may be slower than float32.
"""

from __future__ import annotations

import contextlib

import torch

from facelab.errors import FacelabError

AMP_MODES: tuple[str, ...] = ("off", "bf16")


def check_amp(mode: str, device: torch.device) -> None:
    """Raise a one-sentence :class:`FacelabError` unless ``mode`` can run on ``device``."""
    if mode not in AMP_MODES:
        raise FacelabError(f"unknown mixed precision '{mode}': expected one of {', '.join(AMP_MODES)}.")
    if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise FacelabError(f"--amp bf16 needs a GPU with bfloat16 support (Ampere or newer); "
                           f"{torch.cuda.get_device_name(device)} has none: train without --amp.")
    if mode == "bf16" and device.type not in ("cuda", "cpu"):
        raise FacelabError(f"--amp bf16 runs on cuda or cpu devices, not on {device.type}.")


def autocast(mode: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of a training or inference step (a no-op when ``mode`` is off)."""
    if mode == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
