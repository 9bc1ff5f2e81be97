"""Data-parallel training on PyTorch's own engine: ``torchrun`` and DistributedDataParallel.

facelab grows no cluster code of its own. ``torchrun`` starts one process per device and tells
each its place through environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``); :func:`init_from_environment` reads them and joins the process
group. The backend follows the device: NCCL between GPUs, gloo between CPU processes.

Every process runs the same trainer on its own shard of each global batch; DDP averages the
gradients, so the run equals a single process over the global batch (per-process batch x
world size). Only rank 0 writes files, logs and the progress bar; metrics are reduced across
ranks (:func:`all_reduce_sum`).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from facelab.errors import FacelabError

_ENVIRONMENT = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class ProcessGroup:
    """Where this process stands: ``rank`` of ``world_size``, and its device's index on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process created the group, so it also tears it down

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes run files, TensorBoard logs and the progress bar."""
        return self.rank == 0


SINGLE_PROCESS = ProcessGroup()


def launched_by_torchrun() -> bool:
    """Whether the environment describes a multi-process run (torchrun, or a test doing its job)."""
    return all(name in os.environ for name in _ENVIRONMENT) and int(os.environ["WORLD_SIZE"]) > 1


def backend_for(device_type: str) -> str:
    """NCCL for CUDA devices (GPU-to-GPU transfers), gloo for CPUs."""
    return "nccl" if device_type == "cuda" else "gloo"


def device_for(requested: str, local_rank: int, distributed: bool) -> torch.device:
    """The device this process trains on: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun.

    Raises:
        FacelabError: CUDA was asked for and is not there, or there are fewer GPUs than processes.
    """
    device = torch.device(requested)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise FacelabError(f"--device {requested} was asked for, but no CUDA device is available: use --device cpu.")
    if distributed and device.index is None:
        if local_rank >= torch.cuda.device_count():
            raise FacelabError(f"process {local_rank} on this machine has no GPU of its own ({torch.cuda.device_count()} "
                               "found): start at most one process per GPU (torchrun --nproc_per_node).")
        device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def init_from_environment(device_type: str, timeout_s: float = 1800.0) -> ProcessGroup:
    """Join the process group torchrun describes, or return :data:`SINGLE_PROCESS`.

    An already initialised default group (a caller that set it up itself) is used as it is.
    """
    if dist.is_available() and dist.is_initialized():
        return ProcessGroup(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), False)
    if not launched_by_torchrun():
        return SINGLE_PROCESS
    if not dist.is_available():
        raise FacelabError("this PyTorch build has no torch.distributed: multi-process training is not possible with it.")
    backend = backend_for(device_type)
    if backend == "nccl" and not dist.is_nccl_available():
        raise FacelabError("multi-GPU training needs NCCL, which this PyTorch build lacks: install a CUDA build of torch.")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if backend == "nccl" and torch.cuda.is_available() and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)  # NCCL binds each process to the GPU current at init
    dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(seconds=timeout_s))
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), local_rank, True)


def shutdown(group: ProcessGroup) -> None:
    """Leave the process group if this process created it."""
    if group.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
    """The element-wise sum over ranks of a tensor (returned as is in a single process)."""
    if group.is_distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_rank(flags: tuple[bool, ...], group: ProcessGroup, device: torch.device) -> tuple[bool, ...]:
    """Each flag, true when it is true on any rank (``flags`` as it is in a single process).

    Every rank must agree to stop (or to fail) at the same step, or those still training would
    wait forever for the ones that left; one small all-reduce per step carries all the flags.
    """
    if not group.is_distributed:
        return tuple(flags)
    values = torch.tensor([1.0 if flag else 0.0 for flag in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(value > 0) for value in values.tolist())


def barrier(group: ProcessGroup) -> None:
    if group.is_distributed:
        dist.barrier()


def data_parallel(module: nn.Module, device: torch.device) -> DistributedDataParallel:
    """``module`` in DDP, for a module whose forward uses every parameter and changes no buffer."""
    options = {"device_ids": [device.index] if device.type == "cuda" else None}
    # No buffer changes during training (the Laplacians and sampling matrices are constants),
    # so none is re-broadcast at each forward (newer torch names the option differently).
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        options["forward_sync_buffers"] = False
    else:
        options["broadcast_buffers"] = False
    return DistributedDataParallel(module, **options)
