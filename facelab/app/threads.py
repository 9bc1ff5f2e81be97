"""How many torch threads the app's own work uses. Qt-free and torch-free: the start reads it before
either is imported."""

from __future__ import annotations

import os


def ui_friendly_threads() -> int:
    """Torch threads for the app's work (training in the worker, inference in the UI thread): every core.

    Leaving a core to the UI costs the run its speed and buys the UI nothing: the UI thread waits
    for events while a run trains, and the OS schedules it between the trainer's threads. Measured
    on 2 cores (SynthFaces, 100 identities, batch 16, the worker running the trainer while a 10 ms UI
    timer ticks; the machine shared with other jobs, load average 2.2): all threads 0.57 s a step,
    timer gaps at most 14 ms; one thread 0.82 s a step, at most 11 ms. At load average 4 every figure
    is worse and noisier (all threads 1.6-2.1 s a step, one thread 1.1-1.7 s, gaps at most 19-47 ms,
    still within the app's 50 ms target).
    """
    return max(1, os.cpu_count() or 1)
