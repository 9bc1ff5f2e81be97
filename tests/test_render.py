"""Headless figures: ``facelab render`` and facelab.render (plain pyvista off-screen, no Qt)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facelab.evaluation.sample import compute_sample
from facelab.cli import EXIT_USER_ERROR, main
from facelab.errors import FacelabError
from facelab.mesh import FaceMesh, read_mesh, write_mesh
from facelab.figure import render_figure, render_sample
from facelab.render import (
    PANEL_SIZE,
    DisplayStyle,
    colour_limits,
    figure_panels,
    preset_camera,
)
from tests.test_app_fixtures import tiny_data, tiny_model, tiny_root  # noqa: F401  (fixtures)


@pytest.fixture
def pair_files(tmp_path, tiny_data):
    pair = tiny_data.pairs_of(tiny_data.split().test_subjects)[0]
    write_mesh(tiny_data.mesh(pair.expressive), tmp_path / "face.ply")
    write_mesh(tiny_data.mesh(pair.neutral), tmp_path / "neutral.ply")
    return tmp_path / "face.ply", tmp_path / "neutral.ply"


def _not_blank(path) -> np.ndarray:
    pixels = np.asarray(Image.open(path).convert("RGBA"))
    assert pixels[..., :3].std() > 10 and len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 50
    return pixels


def test_colour_limits():
    values = [np.linspace(0, 10, 101), None, np.array([20.0])]
    assert colour_limits(values, DisplayStyle(range_mode="fixed", fixed_max_mm=3.0)) == (0.0, 3.0)
    low, high = colour_limits(values, DisplayStyle(range_mode="percentile", percentile=50.0))
    assert low == 0.0 and high == pytest.approx(np.percentile(np.r_[np.linspace(0, 10, 101), 20.0], 50.0))
    assert colour_limits([None], DisplayStyle()) == (0.0, 1.0)
    with pytest.raises(FacelabError, match="unknown colormap"):
        DisplayStyle(colormap="jet").validate()
    with pytest.raises(FacelabError, match="above 0 mm"):
        DisplayStyle(fixed_max_mm=0).validate()


@pytest.mark.parametrize("preset,axis", [("front", 2), ("side", 0)])
def test_camera_presets_look_along_their_axis(preset, axis):
    points = np.random.default_rng(0).normal(size=(200, 3)) * [60, 80, 30]
    camera = preset_camera([points], preset, aspect=0.8)
    direction = np.subtract(camera.position, camera.focal_point)
    assert np.argmax(np.abs(direction)) == axis and direction[axis] > 0
    assert camera.view_up[1] > 0.99


def test_render_sample_sizes_panels_and_transparency(tmp_path, tiny_model, tiny_data):
    pair = tiny_data.pairs[0]
    sample = compute_sample(tiny_model, tiny_data.vertices[pair.expressive], tiny_data.vertices[pair.neutral])
    size = render_sample(sample, tiny_model.triangles, tmp_path / "three.png")
    assert size == (3 * PANEL_SIZE[0], PANEL_SIZE[1]) == Image.open(tmp_path / "three.png").size
    _not_blank(tmp_path / "three.png")
    sample.truth, sample.error = None, None
    size = render_sample(sample, tiny_model.triangles, tmp_path / "two.png", scale=2, transparent=True)
    assert size == (2 * 2 * PANEL_SIZE[0], 2 * PANEL_SIZE[1]) == Image.open(tmp_path / "two.png").size
    alpha = _not_blank(tmp_path / "two.png")[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255


def test_render_figure_refuses_bad_requests(tmp_path, tiny_data):
    panels = figure_panels(tiny_data.vertices[1], None, None, DisplayStyle())
    with pytest.raises(FacelabError, match="PNG"):
        render_figure(panels, tiny_data.triangles, tmp_path / "x.jpg")
    with pytest.raises(FacelabError, match="scale"):
        render_figure(panels, tiny_data.triangles, tmp_path / "x.png", scale=20)
    assert not list(tmp_path.iterdir())


def test_facelab_render_writes_the_requested_size_without_a_display(tmp_path, pair_files):
    source, truth = pair_files
    out = tmp_path / "figure.png"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "facelab", "render", str(source), "--ground-truth", str(truth),
                             "--checkpoint", str(tiny_root() / "run" / "best"), "--out", str(out), "--scale", "1.5"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    width, height = round(3 * PANEL_SIZE[0] * 1.5), round(PANEL_SIZE[1] * 1.5)
    assert f"({width} x {height} pixels)" in result.stdout
    assert Image.open(out).size == (width, height)
    _not_blank(out)
    assert "bad X server" not in result.stderr


def test_facelab_render_in_process_options(tmp_path, pair_files, capsys):
    source, _ = pair_files
    out = tmp_path / "f.png"
    assert main(["render", str(source), "--checkpoint", str(tiny_root() / "run" / "best"), "--out", str(out),
                 "--view", "front", "--colormap", "viridis", "--displacement", "--range", "fixed", "--max", "4"]) == 0
    assert Image.open(out).size == (2 * PANEL_SIZE[0], PANEL_SIZE[1])   # no ground truth: two panels


@pytest.mark.parametrize("case", ["missing-input", "not-png", "other-template", "bad-checkpoint", "no-model"])
def test_facelab_render_bad_inputs_exit_2(tmp_path, pair_files, capsys, monkeypatch, case):
    source, truth = pair_files
    out = tmp_path / "out.png"
    checkpoint = str(tiny_root() / "run" / "best")
    args = ["render", str(source), "--checkpoint", checkpoint, "--out", str(out)]
    if case == "missing-input":
        args[1] = str(tmp_path / "missing.ply")
    elif case == "not-png":
        out = tmp_path / "out.jpg"
        args[-1] = str(out)
    elif case == "other-template":
        mesh = read_mesh(source)
        write_mesh(FaceMesh(mesh.vertices[:100], mesh.triangles[mesh.triangles.max(axis=1) < 100]), tmp_path / "o.ply")
        args += ["--ground-truth", str(tmp_path / "o.ply")]
    elif case == "bad-checkpoint":
        (tmp_path / "bad.json").write_text("{}")
        (tmp_path / "bad.safetensors").write_bytes(b"x")
        args[3] = str(tmp_path / "bad")
    else:
        monkeypatch.setenv("FACELAB_MODEL", str(tmp_path / "nothing"))
        args = ["render", str(source), "--out", str(out)]
    assert main(args) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("facelab: error: ") and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("scale", ["0.5", "5", "big"])
def test_facelab_render_scale_out_of_range_exits_2(tmp_path, pair_files, scale, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(pair_files[0]), "--out", str(tmp_path / "o.png"), "--scale", scale])
    assert exit_info.value.code == EXIT_USER_ERROR
    assert "between 1 and 4" in capsys.readouterr().err
