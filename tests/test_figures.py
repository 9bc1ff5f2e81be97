"""``facelab evaluate --figures``: the paper's figures from the evaluation run itself."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from matplotlib.container import BarContainer
from PIL import Image

from facelab.cli import EXIT_USER_ERROR, main
from facelab.evaluation.evaluate import MODEL_ROW, EvaluationErrors, MethodErrors, evaluate_model_with_errors
from facelab.evaluation.figures import (
    COLUMN_WIDTH_IN,
    DPI,
    FIGURE_NAMES,
    cumulative_error_figure,
    per_expression_figure,
    per_expression_rows,
    render_error_maps,
)
from tests.conftest import make_tiny_dataset
from tests.test_app_fixtures import tiny_data, tiny_model, tiny_root  # noqa: F401  (fixtures)


def _drawn(image: np.ndarray) -> np.ndarray:
    return np.any(image < 250, axis=-1)


def test_error_maps_are_coloured_where_the_errors_are():
    sphere = make_tiny_dataset(subjects=1, expressions=0)
    template = np.asarray(sphere.vertices[0])
    upper_half_wrong = np.where(template[:, 1] > 0, 5.0, 0.0)
    (front,) = render_error_maps(template, sphere.triangles, [upper_half_wrong, np.zeros(len(template))],
                                 views=("front",), limits=(0.0, 5.0))
    wrong, right = (image.astype(float) for image in front)
    assert wrong.shape == right.shape  # one crop for the maps of a view
    rows = np.flatnonzero(_drawn(front[0]).any(axis=1))
    top = wrong[rows[0] + 5: rows[0] + len(rows) // 3][_drawn(front[0])[rows[0] + 5: rows[0] + len(rows) // 3]]
    bottom = wrong[rows[-1] - len(rows) // 3: rows[-1] - 5][_drawn(front[0])[rows[-1] - len(rows) // 3: rows[-1] - 5]]
    # cividis: the top of the scale is yellow (red over blue), its bottom dark blue
    assert top[:, 0].mean() > top[:, 2].mean() + 40
    assert bottom[:, 2].mean() > bottom[:, 0].mean() + 20
    everywhere = right[_drawn(front[1])]
    assert everywhere[:, 2].mean() > everywhere[:, 0].mean() + 20


def test_method_errors_give_the_cumulative_share():
    errors = np.linspace(0.0, 2.0, 2001).reshape(1, -1)  # one pair, errors 0..2 mm evenly
    method = MethodErrors.of(errors)
    np.testing.assert_allclose(method.share_below(np.array([0.5, 1.0, 1.5])), [0.25, 0.5, 0.75], atol=1e-3)
    assert method.share_below(-1.0) == 0.0 and method.share_below(3.0) == 1.0
    figure = cumulative_error_figure(EvaluationErrors(["e"], {MODEL_ROW: method}))
    (line,) = figure.axes[0].get_lines()
    x, y = line.get_data()
    assert np.all(np.diff(y) >= 0) and y[0] == 0.0 and y[-1] == pytest.approx(100.0)
    np.testing.assert_allclose(y, 100 * np.clip(x / 2.0, 0, 1), atol=0.2)


def test_the_figures_draw_the_evaluations_own_numbers(tiny_model, tiny_data):
    config = tiny_model.meta.get("train_config", {})
    split = tiny_data.split(config.get("train_fraction", 0.7), config.get("split_seed", 0))
    result, errors = evaluate_model_with_errors(tiny_model, tiny_data, split, robustness=False)
    assert set(errors.methods) == {MODEL_ROW, "do_nothing", "linear"}
    assert len(errors.expressions) == result["test_pairs"]
    assert errors.methods[MODEL_ROW].per_vertex.mean() == pytest.approx(result["mean_error_mm"])
    assert errors.methods["do_nothing"].per_vertex.mean() == pytest.approx(
        result["baselines"]["do_nothing"]["mean_error_mm"])
    assert errors.methods["linear"].per_vertex.mean() == pytest.approx(result["baselines"]["linear"]["mean_error_mm"])

    rows = per_expression_rows(errors)
    json_rows = {MODEL_ROW: result["per_expression"], "do_nothing": result["baselines"]["do_nothing"]["per_expression"],
                 "linear": result["baselines"]["linear"]["per_expression"]}
    for name, expected in json_rows.items():
        assert list(rows[name]) == list(expected)
        assert [mean for mean, _ in rows[name].values()] == pytest.approx(list(expected.values()))

    bars = [container for container in per_expression_figure(errors).axes[0].containers
            if isinstance(container, BarContainer)]
    assert [container.get_label() for container in bars] == ["facelab", "linear", "do nothing"]
    for container, name in zip(bars, (MODEL_ROW, "linear", "do_nothing")):
        np.testing.assert_allclose(container.datavalues, list(json_rows[name].values()))


def test_evaluate_writes_the_figures_as_png_and_svg(tmp_path, capsys):
    root = tiny_root()
    figures, report = tmp_path / "figures", tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(root / "run" / "best"), "--data", str(root / "data"),
                 "--json", str(report), "--figures", str(figures), "--no-robustness"]) == 0
    assert f"figures in {figures}" in capsys.readouterr().out
    assert sorted(path.name for path in figures.iterdir()) == sorted(
        f"{name}.{fmt}" for name in FIGURE_NAMES for fmt in ("png", "svg"))
    for name in FIGURE_NAMES:
        with Image.open(figures / f"{name}.png") as image:
            image.verify()
        with Image.open(figures / f"{name}.png") as image:
            assert image.width == round(COLUMN_WIDTH_IN * DPI)  # one column of a paper
        svg = ElementTree.parse(figures / f"{name}.svg").getroot()
        assert svg.tag.endswith("svg")
    # text stays text in the SVG (editable, searchable)
    assert "do nothing" in (figures / "per_expression_error.svg").read_text()
    result = json.loads(report.read_text())
    assert set(result["baselines"]["linear"]["per_expression"]) == set(result["per_expression"])


@pytest.mark.parametrize("case", ["a-file", "under-a-file", "read-only"])
def test_a_figure_folder_that_cannot_be_written_exits_2_before_evaluating(tmp_path, capsys, monkeypatch, case):
    if case == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    import facelab.commands.evaluate

    monkeypatch.setattr(facelab.commands.evaluate, "load_model", lambda *args, **kwargs: pytest.fail("evaluated anyway"))
    (tmp_path / "file.txt").write_text("x")
    folder = {"a-file": tmp_path / "file.txt", "under-a-file": tmp_path / "file.txt" / "figures",
              "read-only": tmp_path / "locked" / "figures"}[case]
    if case == "read-only":
        (tmp_path / "locked").mkdir(mode=0o500)
    assert main(["evaluate", "--figures", str(folder)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("facelab: error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (tmp_path / "file.txt").read_text() == "x"
