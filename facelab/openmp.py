"""Let torch's CPU threads sleep soon when they wait, so processes sharing the cores do not starve each other.

torch's CPU threads are GNU OpenMP's (libgomp). Left to its defaults, a thread that waits for the
others at the end of an operation spins up to 300,000 times (milliseconds) before it sleeps. With
another busy process on the same cores (a second facelab command, a training run beside the app,
a test suite) the spinning threads use up the time slices the others need, and both processes
slow down many times more than sharing the cores explains. A spin of 1,000 (``GOMP_SPINCOUNT``)
lets them share the cores, at the cost of a few percent when facelab runs alone (the
``neutralise.shared_cores`` row of ``docs/results/benchmarks.md`` measures both).

libgomp reads its settings once, when torch is imported: :func:`short_spin` runs when facelab is
imported, so it applies wherever facelab is imported before torch (the ``facelab`` command, the
app, the benchmarks, a script that imports facelab first). A user's own ``GOMP_SPINCOUNT`` or
``OMP_WAIT_POLICY`` is left as it is.
"""

from __future__ import annotations

import os

SPIN_COUNT = "1000"


def short_spin() -> None:
    """Set ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` unless the user chose a wait policy."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
