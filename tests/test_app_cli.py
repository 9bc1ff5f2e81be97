"""``facelab gui``: its arguments, and the app started as a user starts it (smoke tests, Xvfb)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PIL import Image

from facelab.cli import EXIT_USER_ERROR, main
from tests.test_app_fixtures import needs_display, tiny_root


@pytest.mark.parametrize("args,message", [
    (["--ground-truth", "n.ply"], "needs an INPUT mesh"),
    (["missing.ply"], "does not exist"),
    (["--checkpoint", "nowhere/best"], "does not exist"),
    (["--screenshot", "shot.jpg"], "PNG"),
])
def test_gui_bad_arguments_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["gui", *args]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_gui_without_a_display_says_so(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["gui"]) == EXIT_USER_ERROR
    assert "needs a display" in capsys.readouterr().err


def _gui(tmp_path, *args, env_extra=None, timeout=300):
    env = os.environ.copy()
    env["FACELAB_SETTINGS_DIR"] = str(tmp_path / "settings")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "facelab", "gui", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.gui
@needs_display
def test_gui_opens_a_dataset_and_saves_a_screenshot(tmp_path):
    shot = tmp_path / "app.png"
    result = _gui(tmp_path, "--data", str(tiny_root() / "data"), "--checkpoint", str(tiny_root() / "run" / "best"),
                  "--screenshot", str(shot))
    assert result.returncode == 0, result.stderr
    image = Image.open(shot)
    assert image.size[0] > 300 and image.size[1] > 200


@pytest.mark.gui
@needs_display
def test_gui_starts_on_synthfaces_without_a_bundled_model(tmp_path):
    """The default start (SynthFaces test split, the bundled model) when the model is missing:
    the data is shown without predictions and the app does not crash."""
    shot = tmp_path / "app.png"
    result = _gui(tmp_path, "--screenshot", str(shot), env_extra={"FACELAB_MODEL": str(tmp_path / "no-model")})
    assert result.returncode == 0, result.stderr
    assert shot.is_file() and "Traceback" not in result.stderr


@pytest.mark.gui
@needs_display
def test_gui_screenshot_with_a_corrupt_checkpoint_shows_its_box_and_exits_2(tmp_path):
    """--screenshot is for scripts: a user error's modal box must not wait for a click (it stopped
    the start before the dataset the screenshot waits for), and the status says it went wrong."""
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "bad.safetensors").write_bytes(b"")
    shot = tmp_path / "app.png"
    result = _gui(tmp_path, "--checkpoint", str(tmp_path / "bad.json"), "--screenshot", str(shot), timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("facelab: error:")]
    assert len(errors) == 1 and "bad.json is corrupt" in errors[0]
    assert shot.is_file() and "Traceback" not in result.stderr and "QThread" not in result.stderr


@pytest.mark.gui
@needs_display
def test_the_window_draws_its_first_frame_before_torch_or_pyplot_is_imported(tmp_path):
    """The window shows at once: torch comes with the model, read in a worker thread once the
    window is up, and the views draw without pyvista's plotting (which imports matplotlib.pyplot)."""
    code = """
import sys, time
from facelab.app.launch import make_application
from facelab.app._qt_main_window import MainWindow
app = make_application()
window = MainWindow()
frames = []
window.viewer.rendered.connect(frames.append)
window.show()
deadline = time.monotonic() + 120
while not frames and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.005)
late = [name for name in ("torch", "matplotlib.pyplot", "pyvista.plotting") if name in sys.modules]
window.close()
assert frames, "no first frame"
assert not late, late
"""
    env = os.environ.copy()
    env["FACELAB_SETTINGS_DIR"] = str(tmp_path / "settings")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)


def test_facelab_gui_begins_reading_before_torch_or_qt_is_imported():
    """``facelab gui`` begins reading its data in a thread before its main thread imports torch or
    Qt, so the first sample is ready when the window is."""
    code = """
import sys
import facelab.app.startup as startup
def start_reading(*_args, **_kwargs):
    print(sorted(name for name in ("torch", "PySide6", "facelab.nn") if name in sys.modules))
    raise SystemExit(0)
startup.start_reading = start_reading
from facelab.cli import main
main(["gui"])
"""
    env = {**os.environ, "DISPLAY": os.environ.get("DISPLAY", ":99")}  # nothing is drawn: it stops first
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
