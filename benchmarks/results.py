"""One benchmark result, its target, and the machine it ran on, in the JSON layout of ``benchmarks/__init__.py``."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from typing import Any

from benchmarks.timing import Timing

#: The size at which the issue's targets are set (the CoMA template's vertex count).
TARGET_VERTICES = 5_023


@dataclass(frozen=True)
class Target:
    """A goal for a result's ``value``: ``value <op> threshold``, judged at ``n_vertices`` only.

    ``n_vertices`` None: judged at every size. Elsewhere the result is only reported (met None).
    """

    text: str
    op: str             # ">=" or "<="
    threshold: float
    n_vertices: int | None = TARGET_VERTICES

    def applies_to(self, n_vertices: int | None) -> bool:
        return self.n_vertices is None or self.n_vertices == n_vertices

    def is_met(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def shortfall(self, value: float) -> str:
        """How far ``value`` is from the threshold, in words ("" when met)."""
        if self.is_met(value):
            return ""
        if self.op == ">=":
            return f"{value:.3g} is {self.threshold / value:.2f}x short of {self.threshold:g}"
        return f"{value:.3g} is {value / self.threshold:.2f}x over {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "op": self.op, "threshold": self.threshold, "n_vertices": self.n_vertices}


@dataclass
class Result:
    """One line of the results: what was measured, both sides, the headline value and its target.

    ``value`` (in ``unit``) is the number the target judges: the speed-up, a latency, a memory
    peak. ``ours``/``reference`` hold the measured sides (a :class:`Timing` or a plain dict of
    numbers); ``ratio`` is how many times better ours is than the reference, where there is one.
    """

    name: str
    device: str
    value: float | None
    unit: str
    ours: Timing | dict[str, Any]
    reference: Timing | dict[str, Any] | None = None
    ratio: float | None = None
    target: Target | None = None
    mesh: str | None = None
    n_vertices: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    met_override: bool | None = None  # a target with a second condition (e.g. equal numbers)

    @property
    def met(self) -> bool | None:
        if self.target is None or not self.target.applies_to(self.n_vertices):
            return None
        if self.value is None:  # nothing to judge (e.g. a budget too short to tell)
            return False if self.met_override is False else None
        met = self.target.is_met(self.value)
        return met and self.met_override is not False

    def to_dict(self) -> dict[str, Any]:
        def side(value):
            return value.to_dict() if isinstance(value, Timing) else value

        return {
            "name": self.name, "device": self.device, "mesh": self.mesh, "n_vertices": self.n_vertices,
            "params": self.params, "ours": side(self.ours), "reference": side(self.reference),
            "ratio": self.ratio, "value": self.value, "unit": self.unit,
            "target": self.target.to_dict() if self.target else None, "met": self.met,
            "extra": self.extra, "notes": self.notes,
        }


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(devices: list[str]) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, torch and its threads, the GPU if one ran."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "devices": devices,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import torch_geometric

        info["torch_geometric"] = torch_geometric.__version__
    except ImportError:
        info["torch_geometric"] = None
    if "cuda" in devices and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                            timeout=5, cwd=os.path.dirname(__file__)).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info
