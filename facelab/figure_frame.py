"""The furniture around a face in a figure, shared by the app's views, its export and ``facelab render``.

A view's face sits between a top band (title and summary) and a bottom band (the colour bar),
each its own renderer in the same window, so text never lies over the face at any zoom. The
colour bar has round ticks, room for its title, and marks values above a fixed range with an
over-range colour and a triangle. No Qt here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facelab.errors import FacelabError
from facelab.render import (
    BACKGROUND,
    BAR_LABEL_FONT,
    BAR_TITLE_FONT,
    ERROR_TITLE,
    NOTE_COLOUR,
    NOTE_FONT,
    TEXT_COLOUR,
    TITLE_FONT,
    DisplayStyle,
    Panel,
    make_text,
    title_offsets,
)

TEXT_COLOURS = ("dark", "light")

#: Pixels at scale 1 of the band above a face (title and summary) and below it (the colour bar).
TOP_BAND = 48
BOTTOM_BAND = 66
#: Values above a fixed colour range: a colour that none of the colormap's own colours is.
OVER_COLOURS = {
    "cividis": (0.86, 0.13, 0.20),
    "viridis": (0.86, 0.13, 0.20),
    "plasma": (0.20, 0.75, 0.30),
    "magma": (0.25, 0.75, 1.00),
    "inferno": (0.25, 0.75, 1.00),
}


# ---- colour-bar ticks ------------------------------------------------------------------------------
def nice_ticks(top: float, most: int = 6) -> list[float]:
    """Round ticks from 0 up to ``top``: steps of 1, 2 or 5 times a power of ten, at most ``most``
    ticks (0, 0.5, 1, 1.5 for a bar ending at 1.9 mm, never 0.0, 0.5, 0.9, 1.4, 1.9)."""
    if not math.isfinite(top) or top <= 0:
        return [0.0]
    magnitude = 10.0 ** math.floor(math.log10(top / max(most - 1, 1)))
    step = next(m * magnitude for m in (1, 2, 5, 10) if top / (m * magnitude) <= most - 1 + 1e-9)
    count = int(math.floor(top / step + 1e-9))
    decimals = max(0, -int(math.floor(math.log10(step) + 1e-9)))
    return [round(i * step, decimals) for i in range(count + 1)]


def tick_label(value: float) -> str:
    """A tick's text: as few decimals as it needs ("0", "0.5", "1", "0.25")."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def over_range(values: np.ndarray | None, style: DisplayStyle, limits: tuple[float, float]) -> bool:
    """Whether a fixed colour range clips some of ``values`` (a percentile range clips by design)."""
    if values is None or style.range_mode != "fixed" or not np.size(values):
        return False
    return bool(np.nanmax(values) > limits[1] * (1 + 1e-6))


# ---- palettes ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Palette:
    """Text and band colours; ``background`` None leaves the bands transparent."""

    text: tuple[float, float, float] = TEXT_COLOUR
    note: tuple[float, float, float] = NOTE_COLOUR
    background: tuple[float, float, float] | None = BACKGROUND


LIGHT_TEXT = (0.96, 0.96, 0.96)
LIGHT_NOTE = (0.80, 0.80, 0.80)


def figure_palette(transparent: bool = False, text: str = "dark") -> Palette:
    """On the white background text is dark; on a transparent one it is what the slide needs:
    ``"dark"`` for a light slide, ``"light"`` for a dark one."""
    if text not in TEXT_COLOURS:
        raise FacelabError(f"unknown text colour '{text}': expected dark or light.")
    if not transparent:
        return Palette()
    if text == "light":
        return Palette(LIGHT_TEXT, LIGHT_NOTE, None)
    return Palette(background=None)


class _On:
    """What :func:`facelab.render.make_text` needs of a plotter: the renderer to draw in."""

    def __init__(self, renderer) -> None:
        self.renderer = renderer


# ---- the colour bar ----------------------------------------------------------------------------------
class ColourBar:
    """A horizontal colour bar in a band renderer, laid out in pixels: the strip, round ticks under
    it, its title above it with room, and a triangle at its top end in the over-range colour when
    values lie above a fixed range (as matplotlib's ``extend='max'``)."""

    SEGMENTS = 128

    def __init__(self, renderer, scale: float = 1.0, palette: Palette = Palette()) -> None:
        from vtkmodules.vtkRenderingCore import vtkActor2D, vtkPolyDataMapper2D

        self.renderer = renderer
        self.scale = scale
        self.palette = palette
        self.limits = (0.0, 1.0)
        self.ticks: list[float] = []
        self.over = False
        self.visible = False
        self.width = 0
        self.strip_box = (0.0, 0.0, 0.0, 0.0)     # the strip's left, bottom, right, top (pixels)
        self._parts = {}
        for name in ("strip", "triangle", "outline", "marks"):
            mapper = vtkPolyDataMapper2D()
            actor = vtkActor2D()
            actor.SetMapper(mapper)
            actor.SetVisibility(False)
            renderer.AddViewProp(actor)
            self._parts[name] = (actor, mapper)
        self._parts["strip"][1].SetScalarModeToUseCellData()
        for name in ("outline", "marks"):
            prop = self._parts[name][0].GetProperty()
            prop.SetColor(*palette.text)
            prop.SetLineWidth(max(1.0, scale))
        self._parts["outline"][0].GetProperty().SetOpacity(0.6)
        self.title = self._text(BAR_TITLE_FONT, "bottom")
        self.labels: list = []
        self._laid_out = False
        self._shape: tuple | None = None     # (width, over) the strip, triangle and outline were drawn for

    def _text(self, size: float, vertical: str):
        from vtkmodules.vtkRenderingCore import vtkTextActor

        actor = vtkTextActor()
        actor.GetPositionCoordinate().SetCoordinateSystemToViewport()
        prop = actor.GetTextProperty()
        prop.SetFontSize(int(round(size * self.scale)))
        prop.SetColor(*self.palette.text)
        prop.SetJustificationToCentered()
        (prop.SetVerticalJustificationToBottom if vertical == "bottom" else prop.SetVerticalJustificationToTop)()
        actor.SetVisibility(False)
        self.renderer.AddViewProp(actor)
        return actor

    def update(self, lookup_table, title: str, limits: tuple[float, float], over: bool, visible: bool,
               over_colour: tuple[float, float, float]) -> None:
        limits = (float(limits[0]), float(limits[1]))
        # A sample switch in a percentile range moves the limits; else nothing needs laying out again.
        moved = (limits, bool(over)) != (self.limits, self.over)
        self.limits = limits
        self.ticks = nice_ticks(self.limits[1])
        self.over = bool(over)
        self.visible = bool(visible)
        strip = self._parts["strip"][1]
        if strip.GetLookupTable() is not lookup_table:
            strip.SetLookupTable(lookup_table)
        strip.SetScalarRange(*self.limits)
        self._parts["triangle"][0].GetProperty().SetColor(*over_colour)
        self.title.SetInput(title)
        while len(self.labels) < len(self.ticks):
            self.labels.append(self._text(BAR_LABEL_FONT, "top"))
        for index, label in enumerate(self.labels):
            label.SetInput(tick_label(self.ticks[index]) if index < len(self.ticks) else "")
        if self.visible:
            self.lay_out(self.width, force=moved or not self._laid_out)
        else:
            self._show()

    def lay_out(self, width: int, force: bool = False) -> None:
        """Place every part for a band ``width`` pixels wide (all heights are fixed pixels)."""
        if width == self.width and not force:
            return
        self.width = width
        s = self.scale
        length = max(20.0, min(0.66 * width, 300.0 * s))
        x0 = (width - length) / 2.0
        x1 = x0 + length
        y0, y1 = 23.0 * s, 35.0 * s
        low = self.limits[0]
        top = self.limits[1] if self.limits[1] > low else low + 1.0
        values = low + (np.arange(self.SEGMENTS) + 0.5) / self.SEGMENTS * (top - low)
        tip = x1 + max(9.0 * s, 0.05 * length)
        if (width, self.over) != self._shape:
            # The strip, its triangle and outline change with the band's width and the over-range
            # mark only: a new sample's colour range only moves the strip's values and the ticks.
            self._shape = (width, self.over)
            edges = np.linspace(x0, x1, self.SEGMENTS + 1)
            a, b = edges[:-1], edges[1:]
            quads = np.stack([np.column_stack([a, np.full_like(a, y0)]), np.column_stack([b, np.full_like(b, y0)]),
                              np.column_stack([b, np.full_like(b, y1)]), np.column_stack([a, np.full_like(a, y1)])],
                             axis=1)
            self._set("strip", quads, closed=True, cell_values=values)
            self._set("triangle", [[(x1, y0), (tip, (y0 + y1) / 2), (x1, y1)]], closed=True)
            outline = [(x0, y0), (x1, y0)] + ([(tip, (y0 + y1) / 2)] if self.over else []) + [(x1, y1), (x0, y1)]
            self._set("outline", [outline + [outline[0]]], closed=False)
        else:
            from vtkmodules.util.numpy_support import vtk_to_numpy

            strip = self._parts["strip"][1].GetInput()
            vtk_to_numpy(strip.GetCellData().GetScalars())[:] = values
            strip.GetCellData().GetScalars().Modified()
            strip.Modified()
        xs = [x0 + (t - low) / (top - low) * length for t in self.ticks]
        self._set("marks", [[(x, y0), (x, y0 - 4 * s)] for x in xs], closed=False)
        for index, label in enumerate(self.labels):
            if index < len(xs):
                label.SetPosition(xs[index], y0 - 6 * s)
        self.title.SetPosition((x0 + x1) / 2.0, y1 + 7 * s)
        self.strip_box = (x0, y0, x1, y1)
        self._laid_out = True
        self._show()

    def _set(self, name: str, polylines, closed: bool, cell_values=None) -> None:
        """Polygons (``closed``) or polylines of 2D pixel points, with optional per-cell values."""
        from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

        lines = [np.asarray(line, dtype=np.float64).reshape(-1, 2) for line in polylines]
        xy = np.concatenate(lines) if lines else np.zeros((0, 2))
        points = vtkPoints()
        points.SetData(numpy_to_vtk(np.column_stack([xy, np.zeros(len(xy))]), deep=True))
        offsets = np.concatenate([[0], np.cumsum([len(line) for line in lines])]).astype(np.int64)
        cells = vtkCellArray()
        cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True),
                      numpy_to_vtkIdTypeArray(np.arange(len(xy), dtype=np.int64), deep=True))
        data = vtkPolyData()
        data.SetPoints(points)
        (data.SetPolys if closed else data.SetLines)(cells)
        if cell_values is not None:
            data.GetCellData().SetScalars(numpy_to_vtk(np.asarray(cell_values, dtype=np.float32), deep=True))
        self._parts[name][1].SetInputData(data)

    def _show(self) -> None:
        for name, (actor, _mapper) in self._parts.items():
            actor.SetVisibility(self.visible and (name != "triangle" or self.over))
        self.title.SetVisibility(self.visible)
        for index, label in enumerate(self.labels):
            label.SetVisibility(self.visible and index < len(self.ticks))

    def set_visible(self, visible: bool) -> None:
        self.visible = bool(visible)
        self._show()


# ---- a view's frame ------------------------------------------------------------------------------------
def band_heights(height: float, scale: float = 1.0) -> tuple[float, float]:
    """Pixels of the top and bottom bands of a view ``height`` pixels tall (at most half of it)."""
    top, bottom = TOP_BAND * scale, BOTTOM_BAND * scale
    shrink = min(1.0, 0.5 * height / (top + bottom)) if height > 0 else 1.0
    return top * shrink, bottom * shrink


def face_height(height: float, scale: float = 1.0) -> float:
    """Pixels of the face's renderer in a view ``height`` pixels tall, between its two bands."""
    top, bottom = band_heights(height, scale)
    return max(1.0, height - top - bottom)


class ViewFrame:
    """The furniture around one view's face: the face's renderer sits between a top band (title
    and summary) and a bottom band (colour bar), two renderers of their own in the same window.

    The bands keep fixed pixel heights: a render-window observer sets the three viewports from
    the window's size before each render. ``columns`` is the view's horizontal share of the window
    (a figure puts its panels side by side in one window).
    """

    def __init__(self, render_window, renderer, scale: float = 1.0, palette: Palette = Palette(),
                 columns: tuple[float, float] = (0.0, 1.0)) -> None:
        from vtkmodules.vtkRenderingCore import vtkRenderer

        self.render_window = render_window
        self.renderer = renderer
        self.scale = scale
        self.palette = palette
        self.columns = (float(columns[0]), float(columns[1]))
        self.top, self.bottom = vtkRenderer(), vtkRenderer()
        for band in (self.top, self.bottom):
            band.SetInteractive(False)          # a drag on a band turns the face's camera
            if palette.background is not None:
                band.SetBackground(*palette.background)
            render_window.AddRenderer(band)
        title_at, subtitle_at = title_offsets(scale)
        self.title = make_text(_On(self.top), "", (0.5, 1.0), TITLE_FONT * scale, palette.text, offset_px=title_at)
        self.subtitle = make_text(_On(self.top), "", (0.5, 1.0), NOTE_FONT * scale, palette.note,
                                  offset_px=subtitle_at)
        self.note = make_text(_On(renderer), "", (0.5, 0.5), (NOTE_FONT + 1) * scale, palette.note,
                              vertical="center")
        self.bar = ColourBar(self.bottom, scale, palette)
        self._size = None
        self._observer = render_window.AddObserver("StartEvent", self._lay_out)

    def face_height(self, height: float) -> float:
        """Pixels of the face's renderer in a view ``height`` pixels tall."""
        return face_height(height, self.scale)

    def _lay_out(self, *_args) -> None:
        width, height = self.render_window.GetSize()
        if (width, height) == self._size or height <= 0:
            return
        self._size = (width, height)
        top, bottom = band_heights(height, self.scale)
        x0, x1 = self.columns
        self.renderer.SetViewport(x0, bottom / height, x1, 1.0 - top / height)
        self.top.SetViewport(x0, 1.0 - top / height, x1, 1.0)
        self.bottom.SetViewport(x0, 0.0, x1, bottom / height)
        self.bar.lay_out(int(round(width * (x1 - x0))))

    def show_text(self, panel: Panel, with_face: bool | None = None) -> None:
        """The panel's title and summary; its note where no face is shown."""
        self.title.SetInput(panel.title)
        self.subtitle.SetInput(panel.subtitle)
        self.note.SetInput("" if (panel.vertices is not None if with_face is None else with_face) else panel.note)

    def show_scalars(self, surface, values, title: str, style: DisplayStyle, limits: tuple[float, float]) -> None:
        """Colour-bar and over-range colour of ``surface`` (None: no face, no bar) for ``values``."""
        if surface is None:
            self.bar.set_visible(False)
            return
        over_colour = OVER_COLOURS.get(style.colormap, OVER_COLOURS["cividis"])
        # A fixed range paints what lies above it in the over-range colour (else it looks like the top).
        surface.set_above_range_colour(over_colour if style.range_mode == "fixed" else None)
        visible = values is not None and bool(surface.actor.GetVisibility())
        self.bar.update(surface.lookup_table, title or surface.scalar_title or ERROR_TITLE, limits,
                        over_range(values, style, limits), visible, over_colour)

    def adopt(self, surface) -> None:
        """Take ``surface`` without its own scalar bar (this frame draws the bar in its band)."""
        self.renderer.RemoveViewProp(surface.bar)

    def close(self) -> None:
        if self.render_window is None:
            return
        try:
            self.render_window.RemoveObserver(self._observer)
        except Exception:  # the window may be finalised already
            pass
        self.render_window = None        # the window may go (the app's views free theirs when they close)
