"""Which devices to run on, and how to wait for one before reading the clock."""

from __future__ import annotations

from collections.abc import Callable


def available_devices(requested: str) -> tuple[str, ...]:
    """``cpu``, ``cuda`` or ``all`` (cpu, plus cuda when one is present) as a tuple of devices.

    Raises ``SystemExit`` with a sentence when ``cuda`` is asked for and there is none.
    """
    import torch

    has_cuda = torch.cuda.is_available()
    if requested == "cpu":
        return ("cpu",)
    if requested == "cuda":
        if not has_cuda:
            raise SystemExit("--device cuda was asked for, but torch sees no CUDA device")
        return ("cuda",)
    return ("cpu", "cuda") if has_cuda else ("cpu",)


def synchronizer(device: str) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` on a GPU (kernels run asynchronously), nothing on the CPU."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return None
