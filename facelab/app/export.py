"""Exporting what the app shows: the figure of its views, the predicted mesh with its per-vertex
error, and error statistics.

Qt-free. The figure is drawn as ``facelab render`` draws one, framed like the window's views
(:mod:`facelab.figure_frame`). Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from facelab.app.session import input_error
from facelab.atomic import atomic_write_text
from facelab.errors import FacelabError
from facelab.evaluation.sample import Sample
from facelab.figure_frame import (  # noqa: F401  (the app's views draw with these)
    OVER_COLOURS,
    TEXT_COLOURS,
    ColourBar,
    ViewFrame,
    band_heights,
    nice_ticks,
    tick_label,
)
from facelab.mesh import FaceMesh, write_mesh

STATS_SUFFIXES = (".csv", ".json")


# ---- figures -----------------------------------------------------------------------------------------
def render_views_figure(request, out: str | Path, *, scale: float = 1.0, transparent: bool = False,
                        text: str = "dark") -> tuple[int, int]:
    """Render the app's views (a :class:`facelab.figure.FigureRequest`) off-screen into a PNG, with
    the same bands and colour bar as the window; returns its (width, height) in pixels.

    ``text``: the text colour on a transparent background ("dark" for light slides, "light" for
    dark ones); on the white background text is always dark.
    """
    return request.render(out, scale=scale, transparent=transparent, text=text)


def file_stem(label: str) -> str:
    """A file name (without suffix) for what ``label`` names: "s01 / smile" -> "s01_smile"."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label.replace(" / ", "_")).strip("_") or "facelab"


# ---- meshes and statistics ---------------------------------------------------------------------------
def export_predicted_mesh(sample: Sample, triangles: np.ndarray, path: str | Path) -> Path:
    """Write the predicted neutral; a PLY carries the per-vertex error (mm) as the property ``error``."""
    path = Path(path)
    if sample.predicted is None:
        raise FacelabError("there is no prediction to export: open a checkpoint first.")
    mesh = FaceMesh(sample.predicted, triangles, name=f"{sample.label} (neutralised)")
    scalars = {"error": sample.error} if sample.error is not None and path.suffix.lower() == ".ply" else None
    return write_mesh(mesh, path, vertex_scalars=scalars)


def sample_statistics(sample: Sample, model_source: str | None = None) -> dict:
    """The numbers of the readout: error statistics (mm), the error of doing nothing, and identity, JSON-able."""
    result: dict = {"sample": sample.label, "subject": sample.subject, "split": sample.part or None,
                    "checkpoint": model_source, "vertices": int(len(sample.expressive))}
    stats = sample.stats
    if stats is not None:
        result.update(stats)
    doing_nothing = input_error(sample)
    if doing_nothing is not None:
        result["input_mean_error_mm"] = float(np.mean(doing_nothing))    # the error of doing nothing
    result["top5"] = [[subject, probability] for subject, probability in sample.top5]
    return result


def export_statistics(sample: Sample, path: str | Path, model_source: str | None = None) -> Path:
    """Write the error statistics as JSON or CSV (one header row, one value row), by the file's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in STATS_SUFFIXES:
        raise FacelabError(f"{path}: statistics are written as .csv or .json, not '{suffix or 'no suffix'}'.")
    if sample.error is None:
        raise FacelabError("there is no error to export: it needs a prediction and a ground truth.")
    result = sample_statistics(sample, model_source)
    if suffix == ".json":
        atomic_write_text(path, json.dumps(result, indent=2) + "\n")
        return path
    row = {key: value for key, value in result.items() if key != "top5"}
    for rank, (subject, probability) in enumerate(sample.top5, start=1):
        row[f"top{rank}_subject"] = subject
        row[f"top{rank}_probability"] = probability
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    atomic_write_text(path, buffer.getvalue())
    return path
