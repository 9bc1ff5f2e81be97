"""Off-screen figures: panels side by side in one PNG, each framed as the app's views are
(:mod:`facelab.figure_frame`), drawn with plain pyvista from the building blocks of
:mod:`facelab.render`. ``facelab render``, the folder render and the app's figure export use it;
no display needed: VTK falls back to EGL. No Qt here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelab.errors import FacelabError
from facelab.render import (
    DEFAULT_VIEW,
    ERROR_TITLE,
    PANEL_SIZE,
    CameraState,
    DisplayStyle,
    FaceSurface,
    Panel,
    colour_limits,
    figure_panels,
    preset_camera,
)


def check_png(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise FacelabError(f"{out}: figures are written as PNG, expected a file name ending in .png.")
    return out


def render_figure(panels: Sequence[Panel], triangles: np.ndarray, out: str | Path, *,
                  style: DisplayStyle | None = None, panel_size: tuple[int, int] = PANEL_SIZE,
                  panel_widths: Sequence[int] | None = None, scale: float = 1.0, transparent: bool = False,
                  camera: CameraState | None = None, view: str = DEFAULT_VIEW,
                  limits: tuple[float, float] | None = None, text: str = "dark") -> tuple[int, int]:
    """Render ``panels`` side by side off-screen into a PNG; returns its (width, height) in pixels.

    Each panel is framed as the app's views are (:class:`facelab.figure_frame.ViewFrame`): the title
    band, the face, the colour-bar band. Each is ``panel_size`` (or ``panel_widths[i]`` wide) times
    ``scale``; fonts, bands and line widths scale with it. ``camera`` (else the ``view`` preset) is
    shared by all panels. ``text``: the text colour on a transparent background ("dark" for light
    slides, "light" for dark ones); on the white background text is always dark.
    """
    import pyvista as pv

    from facelab.atomic import atomic_path
    from facelab.figure_frame import ViewFrame, face_height, figure_palette

    out = check_png(out)
    prefer_egl_without_display()
    palette = figure_palette(transparent, text)
    style = (style or DisplayStyle()).validate()
    if not 0.25 <= scale <= 8:
        raise FacelabError(f"the figure scale must lie between 0.25 and 8, got {scale}.")
    if not panels:
        raise FacelabError("nothing to render: a figure needs at least one panel.")
    widths = [int(round(w * scale)) for w in (panel_widths or [panel_size[0]] * len(panels))]
    height = int(round(panel_size[1] * scale))
    total = (sum(widths), height)
    if limits is None:
        limits = colour_limits([p.scalars for p in panels], style)
    if camera is None:
        shown = [p.vertices for p in panels if p.vertices is not None]
        camera = preset_camera(shown, view, aspect=widths[0] / face_height(height, scale)) if shown else None

    plotter = pv.Plotter(off_screen=True, window_size=total, border=False, lighting="light kit",
                         shape=(1, len(panels)))
    frames = []
    try:
        for index, (panel, columns) in enumerate(zip(panels, column_spans(widths))):
            plotter.subplot(0, index)
            renderer = plotter.renderer
            if palette.background is not None:
                renderer.set_background(palette.background)
            frame = ViewFrame(plotter.ren_win, renderer, scale, palette, columns)
            frames.append(frame)
            frame.show_text(panel)
            surface = None
            if panel.vertices is not None:
                surface = FaceSurface(plotter, triangles, panel.vertices, panel.scalar_title or ERROR_TITLE,
                                      font_scale=scale)
                frame.adopt(surface)
                surface.set_style(style, limits)
                surface.set_scalars(panel.scalars)
                surface.actor.prop.line_width = 0.5 * scale
            frame.show_scalars(surface, panel.scalars if surface is not None else None, panel.scalar_title,
                               style, limits)
            if camera is not None:
                camera.apply(renderer.camera)
                renderer.camera_set = True  # else pyvista resets it on the first render
                renderer.ResetCameraClippingRange()
        with atomic_path(out) as tmp:
            plotter.screenshot(str(tmp), transparent_background=transparent, window_size=total)
    finally:
        for frame in frames:
            frame.close()
        plotter.close()
    return total


def prefer_egl_without_display() -> None:
    """Without a display VTK tries X first, warns "bad X server connection", then falls back to
    EGL: go to EGL directly when it is installed."""
    import ctypes.util
    import os
    import sys

    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and ctypes.util.find_library("EGL"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def column_spans(widths: Sequence[int]) -> list[tuple[float, float]]:
    """The horizontal share (left, right in 0..1) of each panel of a window, side by side by width."""
    edges = np.concatenate([[0], np.cumsum(widths)]) / float(sum(widths))
    return [(float(edges[i]), float(edges[i + 1])) for i in range(len(widths))]


def render_sample(sample, triangles: np.ndarray, out: str | Path, *, style: DisplayStyle | None = None,
                  scale: float = 1.0, transparent: bool = False, view: str = DEFAULT_VIEW) -> tuple[int, int]:
    """The figure of one sample (``facelab render``): input, prediction and, if known, ground truth.

    ``sample`` has ``expressive``, ``predicted``, ``truth`` and ``error`` arrays (truth and error may
    be None); without a ground truth the figure has two panels and no error colours.
    """
    style = style or DisplayStyle()
    panels = figure_panels(sample.expressive, sample.predicted, sample.truth, style, sample.error,
                           with_truth_panel=sample.truth is not None)
    return render_figure(panels, triangles, out, style=style, scale=scale, transparent=transparent, view=view)


@dataclass
class FigureRequest:
    """What the app's export asks of :func:`render_figure` (kept here so it stays Qt-free)."""

    panels: list[Panel]
    triangles: np.ndarray
    panel_widths: list[int]
    height: int
    camera: CameraState | None
    limits: tuple[float, float]
    style: DisplayStyle = field(default_factory=DisplayStyle)

    def render(self, out: str | Path, scale: float = 1.0, transparent: bool = False,
               text: str = "dark") -> tuple[int, int]:
        return render_figure(self.panels, self.triangles, out, style=self.style,
                             panel_size=(self.panel_widths[0], self.height), panel_widths=self.panel_widths,
                             scale=scale, transparent=transparent, camera=self.camera, limits=self.limits,
                             text=text)
