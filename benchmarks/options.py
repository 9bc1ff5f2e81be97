"""The settings every benchmark receives: how long to measure, where, and at which sizes."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.meshes import COMA_VERTICES, FACESCAPE_VERTICES, BenchmarkMesh, benchmark_meshes


@dataclass(frozen=True)
class Options:
    """``quick``: a smoke run (few repetitions, short budgets); numbers from it are not results.

    ``sizes``: the meshes, ``"template"`` (SynthFaces) or vertex counts; the tests pass a tiny
    one. ``devices``: ``cpu`` and/or ``cuda``.
    """

    quick: bool = False
    devices: tuple[str, ...] = ("cpu",)
    sizes: tuple[str | int, ...] = ("template", COMA_VERTICES, FACESCAPE_VERTICES)
    app_training_seconds: float = 20.0

    def repeats(self, full: int) -> int:
        return 3 if self.quick else full

    def warmup(self, full: int = 2) -> int:
        return 1 if self.quick else full

    def meshes(self) -> list[BenchmarkMesh]:
        return benchmark_meshes(self.sizes)
