"""The figures of an evaluation run that a 3D-face paper needs, as PNG and SVG.

From the errors :func:`~facelab.evaluation.evaluate.evaluate_model_with_errors` keeps (no second
pass over the test split):

- ``error_heatmap``: each template vertex's error averaged over the test pairs, drawn on the
  template from the front and the side, for the model and for doing nothing, on one colour scale;
- ``per_expression_error``: the mean error per expression (whiskers: one standard deviation over
  the test pairs) of the model beside the do-nothing and linear rows;
- ``cumulative_error``: the share of all vertices of all test pairs whose error is under x mm.

They are sized for one column of a two-column paper (3.5 in wide, 7 pt text), use colour-blind-safe
colours (cividis for the heatmaps, the Okabe-Ito palette and distinct dashes for the lines) and
keep their text as text in the SVG. The faces are drawn by the off-screen pyvista path of
:mod:`facelab.render`; matplotlib lays the figures out.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from facelab.errors import FacelabError
from facelab.evaluation.evaluate import MODEL_ROW, EvaluationErrors, MethodErrors

#: The figures written, by file stem; each as every one of :data:`FIGURE_FORMATS`.
FIGURE_NAMES = ("error_heatmap", "per_expression_error", "cumulative_error")
FIGURE_FORMATS = ("png", "svg")
COLUMN_WIDTH_IN = 3.5
DPI = 300
HEATMAP_COLORMAP = "cividis"
HEATMAP_VIEWS = ("front", "side")
#: Per method: label, Okabe-Ito colour and line style (the lines differ in print without colour too).
METHOD_STYLES = {
    MODEL_ROW: ("facelab", "#0072B2", "-"),
    "linear": ("linear", "#009E73", "--"),
    "do_nothing": ("do nothing", "#D55E00", ":"),
}
_FACE_PIXELS = (480, 540)  # each rendered view before cropping: ~300 dpi at half a column
_TEXT = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 6.5,
         "ytick.labelsize": 6.5, "legend.fontsize": 6.5, "axes.linewidth": 0.6, "lines.linewidth": 1.2,
         "svg.fonttype": "none", "svg.hashsalt": "facelab"}


def check_figure_folder(folder: str | os.PathLike) -> Path:
    """``folder`` if the figures can be written into it (it need not exist yet), checked before
    an evaluation runs so that a bad path fails at once.

    Raises:
        FacelabError: ``folder`` is a file, lies under a file, or cannot be written.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FacelabError(f"{folder} is a file: expected a folder to write the figures into.")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FacelabError(f"cannot create the figure folder {folder}: {existing} is a file.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FacelabError(f"cannot write the figures into {folder}: {existing} is not writable.")
    return folder


def write_evaluation_figures(errors: EvaluationErrors, template: np.ndarray, triangles: np.ndarray,
                             folder: str | os.PathLike) -> list[Path]:
    """Write the figures of :data:`FIGURE_NAMES` into ``folder`` as PNG and SVG; returns the files.

    Args:
        errors: what :func:`~facelab.evaluation.evaluate.evaluate_model_with_errors` kept.
        template: (n, 3) the model's template vertices in mm, on which the heatmaps are drawn.
        triangles: (t, 3) the template's triangles.
        folder: created when missing; figures there are replaced.

    Raises:
        FacelabError: ``folder`` cannot be written.
    """
    import matplotlib

    folder = check_figure_folder(folder)
    with matplotlib.rc_context(_TEXT):
        figures = {"error_heatmap": error_heatmap_figure(errors, template, triangles),
                   "per_expression_error": per_expression_figure(errors),
                   "cumulative_error": cumulative_error_figure(errors)}
        return [path for name, figure in figures.items() for path in _save(figure, folder / name)]


def _save(figure, stem: Path) -> list[Path]:
    from facelab.atomic import atomic_path

    written = []
    for fmt in FIGURE_FORMATS:
        path = stem.with_suffix(f".{fmt}")
        # no date or software version in the files: the same run writes the same figures
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata)
        written.append(path)
    return written


def _methods(errors: EvaluationErrors) -> list[str]:
    """The methods of ``errors`` in drawing order: the model first, then the baselines."""
    return [name for name in METHOD_STYLES if name in errors.methods]


# ---- the heatmaps ------------------------------------------------------------------------------------
def render_error_maps(template: np.ndarray, triangles: np.ndarray, maps: list[np.ndarray], views=HEATMAP_VIEWS,
                      limits: tuple[float, float] | None = None,
                      colormap: str = HEATMAP_COLORMAP) -> list[list[np.ndarray]]:
    """The template coloured by each of ``maps`` (per-vertex values, mm) from each view, drawn
    off-screen on white without titles or scalar bar and cropped to the faces (one crop per view,
    so the maps of one view line up): ``images[view][map]``, RGB arrays.

    ``limits`` is the colour range shared by all maps (default: 0 to their largest value).
    """
    import pyvista as pv

    from facelab.figure import prefer_egl_without_display
    from facelab.render import BACKGROUND, DisplayStyle, FaceSurface, preset_camera

    if limits is None:
        limits = (0.0, max(float(np.max(values)) for values in maps) or 1.0)
    prefer_egl_without_display()
    plotter = pv.Plotter(off_screen=True, window_size=_FACE_PIXELS, border=False, lighting="light kit")
    images = []
    try:
        plotter.renderer.set_background(BACKGROUND)
        surface = FaceSurface(plotter, triangles, template, "")
        surface.set_style(DisplayStyle(colormap=colormap), limits)
        for view in views:
            camera = preset_camera([template], view, aspect=_FACE_PIXELS[0] / _FACE_PIXELS[1], margin=1.05)
            row = []
            for values in maps:
                surface.set_scalars(values)
                surface.bar.SetVisibility(False)
                camera.apply(plotter.renderer.camera)
                plotter.renderer.camera_set = True
                plotter.renderer.ResetCameraClippingRange()
                plotter.render()
                row.append(np.array(plotter.screenshot(None, return_img=True))[..., :3])
            images.append(_crop_together(row))
    finally:
        plotter.close()
    return images


def _crop_together(images: list[np.ndarray], pad: int = 4) -> list[np.ndarray]:
    """``images`` cut to the box that holds every non-white pixel of all of them."""
    drawn = np.any([np.any(image < 250, axis=-1) for image in images], axis=0)
    if not drawn.any():
        return images
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    top, bottom = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, drawn.shape[0])
    left, right = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, drawn.shape[1])
    return [image[top:bottom, left:right] for image in images]


def error_heatmap_figure(errors: EvaluationErrors, template: np.ndarray, triangles: np.ndarray):
    """The model's and do-nothing's per-vertex error (mean over the test pairs) on the template,
    front and side, one colour scale from 0 to the larger of the two maps' largest value."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    shown = [name for name in (MODEL_ROW, "do_nothing") if name in errors.methods]
    maps = [errors.methods[name].per_vertex for name in shown]
    top = max(float(np.max(values)) for values in maps) or 1.0
    images = render_error_maps(template, triangles, maps, limits=(0.0, top))
    heights = [max(image.shape[0] / image.shape[1] for image in row) for row in images]
    panel_width = (COLUMN_WIDTH_IN - 0.3) / len(shown)
    # titles and colour bar take ~1 in; the faces shrink to keep the figure within 4.2 in
    figure = Figure(figsize=(COLUMN_WIDTH_IN, min(1.0 + panel_width * sum(heights), 4.2)), layout="constrained")
    grid = figure.subplots(len(images), len(shown), squeeze=False, gridspec_kw={"height_ratios": heights})
    for row, (view, row_images) in enumerate(zip(HEATMAP_VIEWS, images)):
        for column, (name, image) in enumerate(zip(shown, row_images)):
            axes = grid[row, column]
            axes.imshow(image, interpolation="lanczos")
            axes.set_xticks([])
            axes.set_yticks([])
            for spine in axes.spines.values():
                spine.set_visible(False)
            if row == 0:
                label = METHOD_STYLES[name][0]
                axes.set_title(f"{label}\nmean {errors.methods[name].per_pair.mean():.2f} mm")
            if column == 0:
                axes.set_ylabel(view)
    bar = figure.colorbar(ScalarMappable(Normalize(0.0, top), HEATMAP_COLORMAP), ax=grid, location="bottom",
                          fraction=0.05, aspect=30, pad=0.02)
    bar.set_label("mean per-vertex error over the test pairs (mm)")
    bar.outline.set_linewidth(0.4)
    return figure


# ---- per expression ------------------------------------------------------------------------------------
def per_expression_rows(errors: EvaluationErrors) -> dict[str, dict[str, tuple[float, float]]]:
    """Per method, per expression (sorted by name): the mean and the standard deviation of the
    test pairs' mean per-vertex errors, mm. The means are the ``per_expression`` rows of the JSON."""
    rows = {}
    for name in _methods(errors):
        groups: dict[str, list[float]] = defaultdict(list)
        for expression, value in zip(errors.expressions, errors.methods[name].per_pair):
            groups[expression].append(float(value))
        rows[name] = {expression: (float(np.mean(values)), float(np.std(values)))
                      for expression, values in sorted(groups.items())}
    return rows


def per_expression_figure(errors: EvaluationErrors):
    """Horizontal bars of each expression's mean error, the methods side by side in each group;
    whiskers span one standard deviation over the test pairs."""
    from matplotlib.figure import Figure

    rows = per_expression_rows(errors)
    methods = list(rows)
    expressions = list(rows[methods[0]])
    group = 0.8
    bar = group / len(methods)
    figure = Figure(figsize=(COLUMN_WIDTH_IN, 1.0 + 0.14 * len(expressions) * max(1.0, len(methods) / 3)),
                    layout="constrained")
    axes = figure.add_subplot()
    positions = np.arange(len(expressions))
    for index, name in enumerate(methods):
        label, colour, _ = METHOD_STYLES[name]
        means = [rows[name][expression][0] for expression in expressions]
        spreads = [rows[name][expression][1] for expression in expressions]
        axes.barh(positions - group / 2 + (index + 0.5) * bar, means, height=bar, color=colour, label=label,
                  xerr=spreads, error_kw={"elinewidth": 0.5, "capsize": 0, "ecolor": "0.25"})
    axes.set_yticks(positions, [expression.replace("_", " ") for expression in expressions])
    axes.set_ylim(len(expressions) - 0.5, -0.5)  # the first expression at the top
    axes.set_xlim(left=0)
    axes.set_xlabel("mean per-vertex error (mm)\nwhiskers: one standard deviation over the test pairs")
    axes.grid(axis="x", linewidth=0.4, color="0.85")
    axes.set_axisbelow(True)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(methods), frameon=False)
    return figure


# ---- cumulative error ------------------------------------------------------------------------------------
def cumulative_error_figure(errors: EvaluationErrors):
    """The share of all per-vertex errors (every vertex of every test pair) under x mm, per
    method, up to a quarter beyond where the model and the linear row reach 99 % (doing nothing
    may end further out: its curve is cut there, else it would squeeze the others to the left)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    methods = _methods(errors)
    fitted = [name for name in methods if name != "do_nothing"] or methods
    top = 1.25 * max(_error_at(errors.methods[name], 0.99) for name in fitted) or 1.0
    millimetres = np.linspace(0.0, top, 400)
    figure = Figure(figsize=(COLUMN_WIDTH_IN, 2.4), layout="constrained")
    axes = figure.add_subplot()
    for name in methods:
        label, colour, style = METHOD_STYLES[name]
        axes.plot(millimetres, 100 * errors.methods[name].share_below(millimetres), color=colour, linestyle=style,
                  label=label)
    axes.set_xlim(0.0, top)
    axes.set_ylim(0.0, 100.0)
    axes.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    axes.set_xlabel("per-vertex error (mm)")
    axes.set_ylabel("vertices with a smaller error")
    axes.grid(linewidth=0.4, color="0.85")
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="lower right", frameon=False)
    return figure


def _error_at(method: MethodErrors, share: float) -> float:
    from facelab.evaluation.evaluate import QUANTILE_LEVELS

    return float(np.interp(share, QUANTILE_LEVELS, method.quantiles))
