"""The desktop app driven as a user would, timed; run under a virtual X server by ``benchmarks/app.py``.

    xvfb-run -a -s "-screen 0 1920x1200x24" python -m benchmarks.app_session --json OUT [--switches 20]
        [--training-seconds 20] [--start-only]

Measures, in this one process:

* start (alone with ``--start-only``): from the process's creation (the interpreter starting,
  imports included) to three frames of ``facelab gui``'s start-up: the window's first (its views,
  no data yet), the first that shows a SynthFaces sample (the data are read first, in a worker
  thread), and the first that shows its prediction by the bundled model (read after the sample
  is drawn); and when the app has predicted the listed samples in the background;
* switch: ``select_index`` (a click in the dataset browser) to the three views and the heatmap
  updated, rendered and presented (VTK renders synchronously), to samples that are not
  neighbours of the previous one, once the app has predicted the list (as a click a few seconds
  after opening finds it); and, for comparison, the same to samples whose prediction is not known;
* timer gaps: a 10 ms QTimer's intervals while the training panel trains in its worker thread,
  previews included, between the run's first step and a stop after ``--training-seconds``.
"""

from __future__ import annotations

import time

PROCESS_STARTED = time.time()  # replaced by the kernel's creation time below when available

import argparse  # noqa: E402
import atexit  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402


def process_created() -> float:
    """When this process was created (epoch seconds), from the kernel; else when this module ran."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # psutil missing: the module's import time is a few ms late at most
        return PROCESS_STARTED


def wait_until(app, predicate, timeout_s: float) -> bool:
    deadline = time.perf_counter() + timeout_s
    while not predicate():
        if time.perf_counter() > deadline:
            return False
        app.processEvents()
        time.sleep(0.002)
    return True


def _scratch(prefix: str) -> str:
    """A temporary folder removed when the process exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="time the facelab app (under Xvfb)")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--training-seconds", type=float, default=20.0)
    parser.add_argument("--start-only", action="store_true", help="measure the start, then quit")
    args = parser.parse_args(argv)
    if "FACELAB_SETTINGS_DIR" not in os.environ:
        os.environ["FACELAB_SETTINGS_DIR"] = _scratch("facelab-bench-settings-")

    from facelab.app.launch import open_main_window
    from facelab.cpu_memory import keep_freed_memory

    keep_freed_memory()                                           # as facelab gui starts (cli.main)
    app, window = open_main_window("synth", size=(1560, 980))    # then run_gui
    created = process_created()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    # No dialog may block a timed run (none can open before the event loop runs): questions are
    # answered No, messages recorded.
    messages: list[str] = []
    for kind in ("critical", "warning", "information", "question"):
        setattr(QMessageBox, kind, staticmethod(
            lambda _parent, title, text, *_a, _kind=kind, **_k: messages.append(f"{_kind}: {title}: {text}")
            or QMessageBox.StandardButton.No))

    frames: dict[str, float] = {}

    def on_rendered(_seconds: float) -> None:
        frames.setdefault("window", time.time())
        if window.entry is not None:
            frames.setdefault("sample", time.time())
            if window.session.model is not None and window.sample.predicted is not None:
                frames.setdefault("prediction", time.time())

    window.viewer.rendered.connect(on_rendered)          # before the event loop draws anything
    if not wait_until(app, lambda: "prediction" in frames, 300):
        raise SystemExit(f"no predicted sample was shown within 300 s; messages: {messages}")
    result = {f"{name}_frame_s": frames[name] - created for name in ("window", "sample", "prediction")}
    if args.start_only:
        window.close()
        args.json.write_text(json.dumps(result))
        return 0
    wait_until(app, lambda: not window._tasks, 60)                  # datasets still being loaded
    if not wait_until(app, lambda: not window.predicting(), 600):
        raise SystemExit("the listed samples were not predicted within 600 s")
    result["listed_predicted_s"] = time.time() - frames["prediction"]

    # Switches: every third visible test entry with a neutral, never a neighbour of the last one.
    entries = [e for e in window.browser.visible_entries() if e.neutral is not None and e.part == "test"]

    def switch_to(targets) -> tuple[list[float], list[float], list[float]]:
        switches, own, drawing = [], [], []
        for entry in targets:
            wait_until(app, lambda: False, 0.05)   # the previous frame's events, untimed
            started = time.perf_counter()
            window.select_index(entry.index)       # updates the views and renders them, synchronously
            switches.append(1e3 * (time.perf_counter() - started))
            assert window.entry is not None and window.entry.index == entry.index
            own.append(1e3 * window.last_switch_s)
            drawing.append(1e3 * window.viewer.last_render_s)
        return switches, own, drawing

    result["switch_ms"], result["app_switch_ms"], result["render_ms"] = switch_to(entries[3::3][:args.switches])
    # Clicks as on samples the app has not predicted yet: it forgets its predictions (none is being made now).
    window.session._predictions.clear()
    window.session._cache.clear()
    result["unpredicted_switch_ms"], _, _ = switch_to(entries[4::3][:args.switches])

    # Timer gaps while training runs in the worker.
    panel = window.training
    out = Path(_scratch("facelab-bench-run-")) / "run"
    panel.form.source.setCurrentIndex(panel.form.source.findData("open"))
    panel.form.epochs.setValue(1)
    panel.form.batch_size.setValue(16)
    panel.form.out_dir.setText(str(out))
    steps: list[float] = []
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    if not panel.start():
        raise SystemExit(f"training did not start: {messages}")
    panel.worker.step_done.connect(lambda _event: steps.append(time.perf_counter()))
    timer.start()
    wait_until(app, lambda: bool(steps), 300)
    first_step = steps[0]
    wait_until(app, lambda: time.perf_counter() - first_step >= args.training_seconds or not panel.running,
               args.training_seconds + 60)
    stop_requested = time.perf_counter()
    panel.stop()
    wait_until(app, lambda: not panel.running, 120)
    timer.stop()
    window_ticks = [t for t in ticks if first_step <= t <= stop_requested]
    result["timer_gaps_ms"] = [1e3 * (b - a) for a, b in zip(window_ticks, window_ticks[1:])]
    result["training_steps"] = sum(1 for t in steps if t <= stop_requested)
    result["training_window_s"] = stop_requested - first_step
    result["messages"] = messages
    window.close()
    args.json.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
