"""The app's views as figures: the colour bar (round ticks, values above a fixed range, room for
its title), titles in their own band at any zoom, text colour on a transparent export, the error
of doing nothing and the alignment beside the prediction's, and the identity panel's spread,
selection and training subjects (pytest-qt, Xvfb)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from facelab.app.export import OVER_COLOURS, band_heights, nice_ticks, tick_label
from facelab.evaluation.metrics import per_vertex_error
from facelab.mesh import write_mesh
from tests.test_app_fixtures import (  # noqa: F401  (fixtures)
    app_settings,
    message_boxes,
    needs_display,
    no_interactor_outlives_the_test,
    shown,
    tiny_data,
    tiny_model,
    tiny_root,
    window,
)

def _bar(win, key="predicted"):
    return win.viewer.views[key].frame.bar


def _labels(bar) -> list[str]:
    return [label.GetInput() for label in bar.labels[:len(bar.ticks)]]


def _image(win, key: str) -> np.ndarray:
    win.viewer.render_all()
    return np.asarray(win.viewer.widget(key).image())[..., :3].astype(int)


def _over_pixels(rgb: np.ndarray) -> int:
    """Pixels of the (shaded) over-range red of cividis: no cividis colour, skin or text is that red."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(np.sum((r > 90) & (r > 2.5 * g) & (r > 2 * b)))


# ---- the colour bar -------------------------------------------------------------------------------
@pytest.mark.parametrize("top,ticks", [
    (1.9, [0, 0.5, 1, 1.5]), (2.0, [0, 0.5, 1, 1.5, 2]), (5.0, [0, 1, 2, 3, 4, 5]), (1.1, [0, 0.5, 1]),
    (0.85, [0, 0.2, 0.4, 0.6, 0.8]), (250, [0, 50, 100, 150, 200, 250]),
])
def test_nice_ticks_are_round_numbers(top, ticks):
    assert nice_ticks(top) == pytest.approx(ticks)
    assert [tick_label(t) for t in nice_ticks(2.0)] == ["0", "0.5", "1", "1.5", "2"]


@pytest.mark.gui
@needs_display
def test_the_colour_bar_ticks_round_numbers_with_room_for_its_title(window, qtbot):
    window.set_style(replace(window.style_, range_mode="fixed", fixed_max_mm=2.0))
    bar = _bar(window)
    assert bar.visible and _labels(bar) == ["0", "0.5", "1", "1.5", "2"]
    window.set_style(replace(window.style_, range_mode="percentile", percentile=99.0))
    top = window.viewer.limits[1]
    values = [float(text) for text in _labels(bar)]
    steps = np.diff(values)
    assert len(values) >= 3 and np.allclose(steps, steps[0]) and values[-1] <= top + 1e-9
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert round(mantissa, 6) in (1, 2, 5), f"ticks {values} for a bar ending at {top}"

    # The title sits above the strip with room, the tick labels under it: they never touch.
    window.viewer.render_all()
    renderer = window.viewer.views["predicted"].frame.bottom
    _x0, y0, _x1, y1 = bar.strip_box

    def vertical_extent(actor):
        box = [0.0] * 4
        actor.GetBoundingBox(renderer, box)       # around the actor's position
        y = actor.GetPosition()[1]
        return y + box[2], y + box[3]

    assert vertical_extent(bar.title)[0] >= y1 + 4, (vertical_extent(bar.title), bar.strip_box)
    for label in bar.labels[:len(bar.ticks)]:
        assert vertical_extent(label)[1] <= y0 - 2, (vertical_extent(label), bar.strip_box)


@pytest.mark.gui
@needs_display
def test_a_fixed_range_marks_the_values_above_it(window, qtbot):
    error = window.sample.error
    surface = window.viewer.surface("predicted")
    bottom = int(round(band_heights(window.viewer.widget("predicted").height())[1]))

    window.set_style(replace(window.style_, range_mode="fixed", fixed_max_mm=float(np.percentile(error, 60))))
    bar = _bar(window)
    assert surface.lookup_table.GetUseAboveRangeColor()
    assert surface.lookup_table.GetAboveRangeColor()[:3] == pytest.approx(OVER_COLOURS["cividis"], abs=0.01)
    assert bar.over and bar._parts["triangle"][0].GetVisibility(), "a triangle at the bar's top end"
    face = _image(window, "predicted")[:-bottom]
    assert _over_pixels(face) > 50, "the vertices above the range are painted in the over-range colour"

    window.set_style(replace(window.style_, fixed_max_mm=float(error.max()) * 1.5))
    assert not bar.over and not bar._parts["triangle"][0].GetVisibility()
    assert _over_pixels(_image(window, "predicted")) == 0

    window.set_style(replace(window.style_, range_mode="percentile"))   # its top is a percentile: no mark
    assert not surface.lookup_table.GetUseAboveRangeColor() and not bar.over


# ---- titles in their band -------------------------------------------------------------------------
@pytest.mark.gui
@needs_display
def test_titles_keep_their_band_in_the_side_view_and_at_any_zoom(window, qtbot):
    from facelab.render import NOTE_FONT, title_offsets

    viewer = window.viewer
    viewer.reset_view("side")
    height = viewer.widget("predicted").height()
    top, bottom = band_heights(height)
    titles = int(-title_offsets()[1][1] + 1.2 * NOTE_FONT)      # the rows the title and summary take
    renderer = viewer.views["predicted"].renderer
    points = np.concatenate([p.vertices for p in viewer.panels if p.vertices is not None])
    ys = []
    for point in points[::3]:
        renderer.SetWorldPoint(*point, 1.0)
        renderer.WorldToDisplay()
        ys.append(renderer.GetDisplayPoint()[1])
    assert min(ys) >= bottom - 1 and max(ys) <= height - max(top, titles) + 1, \
        "the side view's faces stay between the bands"

    viewer.camera.Zoom(4.0)                     # the dark-blue face fills the view
    qtbot.waitUntil(lambda: not viewer._render_pending, timeout=2000)
    image = _image(window, "predicted")
    band = image[:titles]
    chroma = band.max(axis=2) - band.min(axis=2)
    assert chroma.max() < 25 and (band.min(axis=2) < 235).mean() < 0.15, \
        "only the band's white and its grey text: no face under the title"
    assert viewer.views["predicted"].title.GetInput() == "Predicted neutral"
    assert (band.min(axis=2) < 128).sum() > 20, "the title is drawn"
    face = image[int(top) + 2:-int(bottom) - 2]
    assert (face.min(axis=2) < 235).mean() > 0.9, "the zoomed face fills its own renderer"


# ---- text colour of a transparent figure ----------------------------------------------------------
@pytest.mark.gui
@needs_display
@pytest.mark.parametrize("text", ["dark", "light"])
def test_a_transparent_figure_takes_the_text_colour_asked_for(window, tmp_path, text):
    out = tmp_path / "figure.png"
    window.export_figure(out, scale=2.0, transparent=True, keys=("predicted",), text=text)
    pixels = np.asarray(Image.open(out).convert("RGBA")).astype(int)
    top, _bottom = band_heights(pixels.shape[0], 2.0)
    # The title band, and the tick labels under the colour bar's strip (23 px up at scale 1).
    for band in (pixels[:int(top)], pixels[-int(20 * 2.0):]):
        ink = band[band[..., 3] > 200][:, :3]
        assert len(ink) > 30
        luminance = ink.mean()
        assert (luminance > 190) if text == "light" else (luminance < 90), (text, luminance)
        assert (band[..., 3] == 0).mean() > 0.5, "the bands stay transparent"


@pytest.mark.gui
@needs_display
def test_the_export_dialog_offers_the_text_colour_of_a_transparent_figure(qtbot):
    from facelab.app._qt_export_dialog import ExportFigureDialog, FigureOptions

    dialog = ExportFigureDialog({"input": (300, 400), "predicted": (300, 400), "truth": (310, 400)})
    qtbot.addWidget(dialog)
    assert not dialog.text.isEnabled(), "on the white background text is dark"
    dialog.transparent.setChecked(True)
    assert dialog.text.isEnabled()
    dialog.text.setCurrentIndex(dialog.text.findData("light"))
    assert dialog.options() == FigureOptions(transparent=True, text="light")
    again = ExportFigureDialog(dialog.sizes, dialog.options())
    qtbot.addWidget(again)
    assert again.options().text == "light" and again.text.isEnabled()


# ---- the error of doing nothing, and the alignment --------------------------------------------------
@pytest.mark.gui
@needs_display
def test_the_readout_shows_the_error_of_doing_nothing(window, tmp_path):
    sample = window.sample
    nothing = per_vertex_error(sample.expressive, sample.truth)
    text = window.readout.text()
    assert f"error mean <b>{sample.stats['mean_error_mm']:.3f}</b>" in text
    assert f"doing nothing (input to truth): mean {nothing.mean():.3f} mm" in text
    assert text.index("error mean") < text.index("doing nothing") < text.index("gallery match")
    assert f"mean {nothing.mean():.2f} mm" in window.viewer.views["input"].subtitle.GetInput()
    assert "re-posed" not in text, "a face in the template's pose is not re-posed"
    window.export_stats(tmp_path / "stats.json")
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["input_mean_error_mm"] == pytest.approx(float(nothing.mean()), rel=1e-5)


@pytest.mark.gui
@needs_display
def test_an_input_the_alignment_re_posed_says_so(window, tmp_path, tiny_data):
    entry = window.entry
    angle = np.radians(30.0)
    turn = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    for index, name in ((entry.index, "turned.ply"), (entry.neutral, "turned_truth.ply")):
        mesh = tiny_data.mesh(index)
        write_mesh(mesh.with_vertices(mesh.vertices @ turn.T + [0.0, 25.0, 0.0]), tmp_path / name)
    assert window.open_mesh(tmp_path / "turned.ply")
    assert window.open_ground_truth(tmp_path / "turned_truth.ply")
    line = window.readout.text().split("<br>")[-1]
    assert line.startswith("The model's alignment re-posed this input"), window.readout.text()
    assert re.search(r"turned (29|30|31)\N{DEGREE SIGN}", line) and "moved" in line
    window.show_entry(entry)                  # the dataset's own pose again
    assert "re-posed" not in window.readout.text()


# ---- the identity panel ------------------------------------------------------------------------------
def _click(qtbot, table, row: int, column: int = 0) -> None:
    from PySide6.QtCore import Qt

    rect = table.visualItemRect(table.item(row, column))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _selected_rows(table) -> list[int]:
    return sorted({index.row() for index in table.selectionModel().selectedIndexes()})


@pytest.mark.gui
@needs_display
def test_gallery_margins_and_spread_separate_the_matches(window):
    from facelab.app._qt_identity_panel import COSINE_COLUMN, MARGIN_COLUMN, SPREAD_ROLE

    sample = window.sample
    gallery = window.session.gallery_for(sample)
    ranked = gallery.matches(sample.embedding, k=None)
    scores = [m.score for m in ranked]
    assert [m.margin for m in ranked[:-1]] == pytest.approx(list(np.subtract(scores[:-1], scores[1:])))
    assert ranked[-1].margin is None
    spread = [m.spread for m in ranked]
    assert spread[0] == 1.0 and spread[-1] == 0.0
    assert spread == pytest.approx(list((np.array(scores) - scores[-1]) / (scores[0] - scores[-1])))
    table = window.identity.gallery
    for row in range(table.rowCount()):
        assert table.item(row, COSINE_COLUMN).text() == f"{ranked[row].score:.4f}"
        assert table.item(row, COSINE_COLUMN).data(SPREAD_ROLE) == pytest.approx(ranked[row].spread)
        margin = ranked[row].margin
        assert table.item(row, MARGIN_COLUMN).text() == ("" if margin is None else f"+{margin:.4f}")


@pytest.mark.gui
@needs_display
def test_a_clicked_row_does_not_stay_selected_on_the_next_sample(window, qtbot, tiny_data):
    gallery, top5 = window.identity.gallery, window.identity.top5
    _click(qtbot, gallery, 1, 1)
    from facelab.app._qt_identity_panel import TRUE_MARK
    subject = gallery.item(1, 1).text().replace(TRUE_MARK, "")
    qtbot.waitUntil(lambda: subject in window.viewer.views["truth"].title.GetInput(), timeout=2000)
    assert _selected_rows(gallery) == [1]
    window.browser.step(+1)
    qtbot.waitUntil(lambda: not _selected_rows(gallery), timeout=2000)
    assert "Gallery" not in window.viewer.views["truth"].title.GetInput()

    _click(qtbot, top5, 0)
    qtbot.waitUntil(lambda: "Training subject" in window.viewer.views["truth"].title.GetInput(), timeout=2000)
    assert _selected_rows(top5) == [0] and not _selected_rows(gallery)
    window.browser.step(+1)
    qtbot.waitUntil(lambda: not _selected_rows(top5) and not _selected_rows(gallery), timeout=2000)


@pytest.mark.gui
@needs_display
def test_clicking_a_training_subject_shows_its_neutral_face(window, qtbot, tiny_data, monkeypatch):
    sample = window.sample
    top5 = window.identity.top5
    subject = top5.item(0, 0).text()
    assert subject in window.session.model.subjects
    _click(qtbot, top5, 0)
    neutral = next(i for i, r in enumerate(tiny_data.records) if r.subject == subject and r.is_neutral)
    qtbot.waitUntil(lambda: window.viewer.views["truth"].title.GetInput() == f"Training subject: {subject} (neutral)",
                    timeout=2000)
    np.testing.assert_array_equal(shown(window, "truth"), tiny_data.vertices[neutral])
    # The error stays measured against the true neutral.
    np.testing.assert_allclose(window.viewer.surface("predicted").scalars, sample.error, atol=1e-5)
    assert subject in window.statusBar().currentMessage()

    # A subject whose neutral face the app cannot show: it says so and the views keep what they show.
    before = shown(window, "truth").copy()
    monkeypatch.setattr(window.session, "subject_neutral", lambda _subject: None)
    other = top5.item(1, 0).text()
    _click(qtbot, top5, 1)
    qtbot.waitUntil(lambda: other in window.identity.note.text(), timeout=2000)
    assert "No neutral face" in window.identity.note.text() and not _selected_rows(top5)
    np.testing.assert_array_equal(shown(window, "truth"), before)


def test_a_synthfaces_training_subject_is_regenerated_from_its_seed():
    from facelab.app.session import synth_neutral
    from facelab.data.synth.generator import generate_synthfaces

    class Model:
        meta = {"data": {"layout": "synth", "options": {"identities": 2700}}}
        n_vertices = 0

    expected = generate_synthfaces(identities=1, seed=0, first=1234)
    Model.n_vertices = expected.vertices.shape[1]
    np.testing.assert_allclose(synth_neutral(Model(), "synth_1234"), expected.vertices[0], atol=1e-4)
    assert synth_neutral(Model(), "p00") is None
    Model.meta = {"data": {"layout": "generic"}}
    assert synth_neutral(Model(), "synth_1234") is None
