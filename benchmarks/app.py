"""The desktop app's responsiveness: start-up, switching samples, and the UI while training runs.

Results ``app.start``, ``app.switch`` and ``app.timer_gaps``, measured by
``benchmarks/app_session.py`` in its own process under ``xvfb-run`` (VTK's Qt widget needs an X
server; Qt's ``offscreen`` platform cannot host it). The SynthFaces cache is filled before the
app starts, so start-up is measured as a user sees it after the first run. Under Xvfb, OpenGL is
Mesa's software renderer on the CPU: rendering (and presenting each view's frame on the X
server) is slower than on a desktop's GPU. The targets are set for a quiet machine.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.options import Options
from benchmarks.results import Result, Target
from benchmarks.timing import Timing

REPO = Path(__file__).resolve().parents[1]
START_TARGET = Target("command to the first rendered frame of a sample <= 3 s (quiet machine)", "<=", 3.0,
                      n_vertices=None)
SWITCH_TARGET = Target("switching a sample <= 30 ms median", "<=", 30.0, n_vertices=None)
GAPS_TARGET = Target("10 ms QTimer gaps <= 50 ms at the 95th percentile while training", "<=", 50.0, n_vertices=None)
EXTRA_STARTS = 4  # starts measured on their own, besides the full session's


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _session(arguments: list[str]) -> dict:
    """One run of ``benchmarks.app_session`` under Xvfb, its measurements."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "app.json"
        command = ["xvfb-run", "-a", "-s", "-screen 0 1920x1200x24", sys.executable, "-m", "benchmarks.app_session",
                   "--json", str(out), *arguments]
        completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
        if completed.returncode != 0 or not out.exists():
            raise RuntimeError(f"the app session failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
        return json.loads(out.read_text())


def _torch_import_s() -> float:
    """Seconds for a fresh interpreter to import torch and exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def run(options: Options) -> list[Result]:
    if shutil.which("xvfb-run") is None:
        raise RuntimeError("the app benchmarks need xvfb-run (make system-deps installs it)")
    from facelab.data.layouts import load_dataset
    from facelab.data.synth.template import face_template

    load_dataset("synth", progress=False)  # fill the cache: start-up is timed warm
    switches = 5 if options.quick else 20
    seconds = 5.0 if options.quick else options.app_training_seconds
    measured = _session(["--switches", str(switches), "--training-seconds", str(seconds)])
    # The start is one number per process, and the noisiest: the median of several starts, each
    # beside a bare `import torch` (the prediction's longest part) to tell the machine's speed that day.
    starts, torch_imports = [measured], [_torch_import_s()]
    for _ in range(0 if options.quick else EXTRA_STARTS):
        starts.append(_session(["--start-only"]))
        torch_imports.append(_torch_import_s())
    frame = {name: statistics.median(start[f"{name}_frame_s"] for start in starts)
             for name in ("window", "sample", "prediction")}
    torch_import = statistics.median(torch_imports)
    sample_frames = [start["sample_frame_s"] for start in starts]
    n_vertices = len(face_template()[0])
    common = dict(device="cpu", mesh="SynthFaces (bundled model)", n_vertices=n_vertices)
    switch = Timing(tuple(measured["switch_ms"]))
    gaps = measured["timer_gaps_ms"]
    p95 = percentile(gaps, 0.95)
    return [
        Result(name="app.start", value=frame["sample"], unit="s", target=START_TARGET,
               ours={"sample_frame_s": frame["sample"], "window_frame_s": frame["window"],
                     "prediction_frame_s": frame["prediction"],
                     "sample_frames_s": [round(value, 3) for value in sample_frames]},
               params={"starts": len(starts)},
               notes=f"process creation to the first frame showing a sample (its input and ground truth), the "
                     f"median of {len(starts)} starts "
                     f"({', '.join(f'{value:.2f}' for value in sample_frames)} s); the window's own first "
                     f"frame after {frame['window']:.2f} s (median)", **common),
        Result(name="app.start_prediction", value=frame["prediction"], unit="s",
               ours={"prediction_frames_s": [round(start["prediction_frame_s"], 3) for start in starts]},
               params={"starts": len(starts)}, extra={"bare_torch_import_s": torch_import},
               notes=f"process creation to the first frame showing the sample's prediction by the bundled model, "
                     f"the median of the same {len(starts)} starts: the model (torch with it) is read once the "
                     f"sample is drawn, and a bare `python -c 'import torch'` took {torch_import:.2f} s (median); "
                     f"the listed samples predicted in the background {measured['listed_predicted_s']:.1f} s "
                     f"later (first start)", **common),
        Result(name="app.switch", value=switch.median_ms, unit="ms", ours=switch, target=SWITCH_TARGET,
               params={"switches": len(switch.samples_ms)},
               extra={"app_own_measure_ms": statistics.median(measured["app_switch_ms"]),
                      "render_ms": statistics.median(measured["render_ms"]),
                      "unpredicted_ms": statistics.median(measured["unpredicted_switch_ms"])},
               notes="select a non-neighbouring test sample (predicted in the background) -> three views and "
                     "heatmap updated, rendered and presented (Mesa software OpenGL under Xvfb), of which "
                     f"{statistics.median(measured['render_ms']):.0f} ms (median) is the three windows' render "
                     "calls; a sample not predicted yet takes "
                     f"{statistics.median(measured['unpredicted_switch_ms']):.0f} ms", **common),
        Result(name="app.timer_gaps", value=p95, unit="ms (p95)", target=GAPS_TARGET,
               ours={"p50_ms": statistics.median(gaps), "p95_ms": p95, "max_ms": max(gaps), "ticks": len(gaps) + 1,
                     "training_steps": measured["training_steps"], "window_s": measured["training_window_s"]},
               params={"interval_ms": 10, "training_seconds": seconds},
               notes=f"{measured['training_steps']} training steps in {measured['training_window_s']:.1f} s; "
                     f"max gap {max(gaps):.0f} ms", **common),
    ]
