"""Take the README's screenshot of the desktop app: assets/app.png.

Usage: python scripts/screenshot_app.py [--out assets/app.png] [--checkpoint CKPT] [--sample LABEL]
                                        [--train-steps 30] [--no-xvfb]

Without --no-xvfb the script re-runs itself under ``xvfb-run`` with a 1920x1200 virtual screen, so
it needs no display and the picture does not depend on the desktop it is run from. It opens the
app as ``facelab gui`` does (the SynthFaces test split with the bundled model, or --checkpoint),
shows one sample, starts a short training run in the background (into a temporary folder) so
the training panel's curves and progress bar are live, then grabs the whole window from the
screen (``QScreen.grabWindow``: ``QWidget.grab`` would miss the OpenGL views). Settings live in a
temporary folder, so the user's are neither used nor changed.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCREEN = "1920x1200x24"
WINDOW_SIZE = (1600, 1000)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "assets" / "app.png")
    parser.add_argument("--checkpoint", default=None, help="a checkpoint (default: the bundled model)")
    parser.add_argument("--sample", default="mouth_open_3",
                        help="the expression (or 'subject / expression') to show from the test split")
    parser.add_argument("--train-steps", type=int, default=30,
                        help="training steps to run before the picture, for live curves (0: no training)")
    parser.add_argument("--no-xvfb", action="store_true", help="use the current display instead of xvfb-run")
    return parser.parse_args(argv)


def reexec_under_xvfb(argv: list[str]) -> int:
    if shutil.which("xvfb-run") is None:
        print("xvfb-run is not installed: install xvfb, or pass --no-xvfb on a desktop", file=sys.stderr)
        return 2
    command = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN}", sys.executable, __file__, *argv, "--no-xvfb"]
    return subprocess.call(command)


def wait(app, seconds: float, until=None) -> bool:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(0.02)
    return until is None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not args.no_xvfb:
        return reexec_under_xvfb(argv)

    settings = tempfile.mkdtemp(prefix="facelab-shot-settings-")
    atexit.register(shutil.rmtree, settings, ignore_errors=True)
    os.environ["FACELAB_SETTINGS_DIR"] = settings
    from facelab.app._qt_main_window import MainWindow
    from facelab.app.launch import grab_window, limit_torch_threads, make_application

    app = make_application()
    limit_torch_threads()
    window = MainWindow()
    window.resize(*WINDOW_SIZE)
    window.move(0, 0)
    window.show()
    run_dir = Path(tempfile.mkdtemp(prefix="facelab-shot-run-")) / "run"
    atexit.register(shutil.rmtree, run_dir.parent, ignore_errors=True)
    try:
        window.start("synth", args.checkpoint)
        if not wait(app, 300, lambda: window.sample is not None):
            print("the dataset did not open in time", file=sys.stderr)
            return 1
        wanted = args.sample
        entry = next((e for e in window.session.entries_of("test") if wanted in (e.expression, e.label)), None)
        if entry is not None:
            window.select_index(entry.index)
        if args.train_steps > 0:
            panel = window.training
            panel.form.source.setCurrentIndex(panel.form.source.findData("open"))
            # a method that trains epochs, so that the curves are live (the recipe's default trains none)
            panel.form.load_choices()
            panel.form.variant.setCurrentIndex(panel.form.variant.findData("identity-preserving"))
            panel.form.epochs.setValue(30)
            panel.form.preview_every.setValue(0)    # the views keep the trained model's prediction
            panel.form.out_dir.setText(str(run_dir))
            steps = []
            if panel.start():
                panel.worker.step_done.connect(lambda event: steps.append(event.global_step))
                wait(app, 900, lambda: len(steps) >= args.train_steps or not panel.running)
        wait(app, 1.5)
        path = grab_window(window, args.out)
        print(f"wrote {path}")
    finally:
        window.close()                          # stops the training run and waits for it
        shutil.rmtree(run_dir.parent, ignore_errors=True)
        shutil.rmtree(settings, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
