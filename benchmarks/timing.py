"""Timing two implementations fairly: same process, alternating call by call, after a warm-up.

Alternating (ours, reference, ours, reference, ...) means a drift of the machine's speed (another
process, thermal throttling, the allocator warming up) hits both sides alike, and the median of
several repetitions ignores the odd outlier. The spread is the inter-quartile range; min and max
are kept too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call of one side: the samples and their summary."""

    samples_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def quartiles_ms(self) -> tuple[float, float]:
        """(first, third) quartile; for fewer than 2 samples both are the one sample."""
        if len(self.samples_ms) < 2:
            return self.samples_ms[0], self.samples_ms[0]
        q1, _, q3 = statistics.quantiles(self.samples_ms, n=4, method="inclusive")
        return q1, q3

    @property
    def spread_ms(self) -> float:
        """The inter-quartile range (q3 - q1)."""
        q1, q3 = self.quartiles_ms
        return q3 - q1

    def to_dict(self) -> dict:
        """The JSON form of a timed side (see the layout in ``benchmarks/__init__.py``)."""
        q1, q3 = self.quartiles_ms
        return {"median_ms": self.median_ms, "spread_ms": self.spread_ms, "q1_ms": q1, "q3_ms": q3,
                "min_ms": min(self.samples_ms), "max_ms": max(self.samples_ms), "repeats": len(self.samples_ms)}


def time_alternating(sides: dict[str, Callable[[], object]], warmup: int, repeats: int,
                     synchronize: Callable[[], None] | None = None,
                     clock: Callable[[], float] = time.perf_counter) -> dict[str, Timing]:
    """Time each side ``repeats`` times, interleaved call by call, after ``warmup`` untimed rounds.

    Args:
        sides: name -> a call doing one unit of work (its result is discarded).
        synchronize: called before reading the clock (``torch.cuda.synchronize`` on a GPU, where
            calls return before the work is done).
        clock: seconds; a parameter so that tests can control it.

    Returns: name -> Timing of ``repeats`` samples.
    """
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        for run in sides.values():
            run()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            start = clock()
            run()
            sync()
            samples[name].append(1e3 * (clock() - start))
    return {name: Timing(tuple(values)) for name, values in samples.items()}


def time_one(run: Callable[[], object], warmup: int, repeats: int,
             synchronize: Callable[[], None] | None = None) -> Timing:
    """A single side (no reference to alternate with)."""
    return time_alternating({"only": run}, warmup, repeats, synchronize)["only"]


def speedup(ours: Timing, reference: Timing) -> float:
    """How many times faster ours is: the reference's median over ours."""
    return reference.median_ms / ours.median_ms
