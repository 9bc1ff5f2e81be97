"""Figures of an expressive face, its predicted neutral and the ground truth, with plain pyvista.

The building blocks here are shared by the desktop app's three views (one :class:`FaceSurface`
per view, updated in place when the sample changes) and by headless rendering: ``facelab
render``, the folder render and the app's figure export draw the same figure off-screen with
:func:`facelab.figure.render_figure`, each panel framed as the app's views are
(:mod:`facelab.figure_frame`); no display needed: VTK falls back to EGL. No Qt here.

Colours: the per-vertex error (mm) of the prediction, and optionally the input's
expressive-to-neutral displacement, share one colour range, either fixed (figures of different
samples compare) or a percentile of the values shown; the default colormap, cividis, is
perceptually uniform and readable with colour-vision deficiencies.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facelab.errors import FacelabError

SKIN = (0.87, 0.74, 0.66)
BACKFACE = (0.32, 0.24, 0.24)      # the inside of the mouth and the back of the mask
TEXT_COLOUR = (0.1, 0.1, 0.1)
NOTE_COLOUR = (0.35, 0.35, 0.35)
BACKGROUND = (1.0, 1.0, 1.0)
#: Perceptually uniform maps first; the first one is the default.
COLORMAPS = ("cividis", "viridis", "magma", "inferno", "plasma")
DEFAULT_COLORMAP = COLORMAPS[0]
RANGE_MODES = ("percentile", "fixed")
#: Camera presets: direction from the face to the camera, and the up vector (faces look along +z, y up).
VIEW_PRESETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "front": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    "side": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "three-quarter": ((0.55, 0.12, 0.83), (0.0, 1.0, 0.0)),
}
DEFAULT_VIEW = "three-quarter"
#: One panel of a headless figure at scale 1, in pixels (width, height).
PANEL_SIZE = (480, 540)
TITLE_FONT = 15     # pixels at scale 1
NOTE_FONT = 12
BAR_TITLE_FONT = 12
BAR_LABEL_FONT = 11

TITLE_INPUT = "Input (expressive)"
TITLE_PREDICTED = "Predicted neutral"
TITLE_TRUTH = "Ground-truth neutral"
ERROR_TITLE = "error (mm)"
DISPLACEMENT_TITLE = "displacement (mm)"


# ---- what is shown -------------------------------------------------------------------------------
@dataclass
class DisplayStyle:
    """How faces are coloured; the app keeps one and remembers it between sessions."""

    colormap: str = DEFAULT_COLORMAP
    range_mode: str = "percentile"   # "percentile" of the values shown, or "fixed"
    fixed_max_mm: float = 5.0
    percentile: float = 99.0
    heatmap: bool = True             # False: plain shaded surfaces
    wireframe: bool = False          # draw the triangle edges
    displacement: bool = False       # colour the input by its expressive-to-neutral displacement

    def validate(self) -> DisplayStyle:
        if self.colormap not in COLORMAPS:
            raise FacelabError(f"unknown colormap '{self.colormap}': expected one of {', '.join(COLORMAPS)}.")
        if self.range_mode not in RANGE_MODES:
            raise FacelabError(f"unknown colour range '{self.range_mode}': expected percentile or fixed.")
        if not self.fixed_max_mm > 0:
            raise FacelabError(f"the fixed colour range must be above 0 mm, got {self.fixed_max_mm}.")
        if not 0 < self.percentile <= 100:
            raise FacelabError(f"the colour percentile must lie in (0, 100], got {self.percentile}.")
        return self


def colour_limits(values: Sequence[np.ndarray | None], style: DisplayStyle) -> tuple[float, float]:
    """The one colour range (0, top) in mm shared by every coloured view."""
    if style.range_mode == "fixed":
        return 0.0, float(style.fixed_max_mm)
    arrays = [np.asarray(v, dtype=np.float64).ravel() for v in values if v is not None and np.size(v)]
    if not arrays:
        return 0.0, 1.0
    top = float(np.percentile(np.concatenate(arrays), style.percentile))
    return 0.0, top if math.isfinite(top) and top > 1e-6 else 1e-3


def bar_format(top: float) -> str:
    """Label format of a scalar bar running from 0 to ``top`` mm: few, short labels."""
    return "%.2f" if top < 1 else "%.1f" if top < 20 else "%.0f"


@dataclass
class Panel:
    """One view: a title, a face (or a note where there is none) and optional per-vertex values."""

    title: str
    vertices: np.ndarray | None
    scalars: np.ndarray | None = None
    scalar_title: str = ""
    note: str = ""
    subtitle: str = ""


def figure_panels(expressive: np.ndarray | None, predicted: np.ndarray | None, truth: np.ndarray | None,
                  style: DisplayStyle, error: np.ndarray | None = None, *, truth_title: str = TITLE_TRUTH,
                  title_suffix: str = "", with_truth_panel: bool = True,
                  notes: dict[str, str] | None = None) -> list[Panel]:
    """The panels of the three views: input, predicted neutral, ground-truth neutral.

    The prediction is coloured by its per-vertex error to the ground truth (``error`` if given,
    else computed); the input by its displacement to the ground truth (else to the prediction)
    when ``style.displacement`` is set. ``notes`` replaces the default texts of empty panels
    (keys ``"input"``, ``"predicted"``, ``"truth"``).
    """
    from facelab.evaluation.metrics import error_summary, per_vertex_error

    notes = {"input": "No mesh loaded.", "predicted": "No model loaded.", "truth": "No ground truth.", **(notes or {})}
    if error is None and predicted is not None and truth is not None:
        error = per_vertex_error(predicted, truth)
    reference = truth if truth is not None else predicted
    displacement = None
    if style.displacement and expressive is not None and reference is not None:
        displacement = per_vertex_error(expressive, reference)
    subtitle = ""
    if error is not None:
        stats = error_summary(error)
        subtitle = f"mean {stats['mean_error_mm']:.2f} mm, max {stats['max_error_mm']:.2f} mm"
    heat = style.heatmap
    panels = [
        Panel(TITLE_INPUT + title_suffix, expressive, displacement if heat else None,
              DISPLACEMENT_TITLE if truth is not None else "displacement to prediction (mm)",
              note=notes["input"]),
        Panel(TITLE_PREDICTED + title_suffix, predicted, error if heat else None, ERROR_TITLE,
              note=notes["predicted"] if expressive is not None else "", subtitle=subtitle),
    ]
    if with_truth_panel:
        panels.append(Panel(truth_title + title_suffix, truth, note=notes["truth"] if expressive is not None else ""))
    return panels


# ---- geometry ------------------------------------------------------------------------------------
def face_polydata(vertices: np.ndarray, triangles: np.ndarray):
    """A VTK triangle mesh of ``vertices`` (copied: updates in place never write into the caller's array)."""
    from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

    triangles = np.asarray(triangles, dtype=np.int64)
    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.array(vertices, dtype=np.float32, copy=True), deep=True))
    cells = vtkCellArray()
    offsets = np.arange(0, 3 * len(triangles) + 1, 3, dtype=np.int64)
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True),
                  numpy_to_vtkIdTypeArray(np.ascontiguousarray(triangles.ravel()), deep=True))
    mesh = vtkPolyData()
    mesh.SetPoints(points)
    mesh.SetPolys(cells)
    return mesh


def _point_array(mesh, name: str, components: int = 1) -> np.ndarray:
    """A float32 point array ``name`` of ``mesh`` (zeros), returned as a writable numpy view of it."""
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy

    shape = (mesh.GetNumberOfPoints(), components) if components > 1 else (mesh.GetNumberOfPoints(),)
    array = numpy_to_vtk(np.zeros(shape, dtype=np.float32), deep=True)
    array.SetName(name)
    mesh.GetPointData().AddArray(array)
    return vtk_to_numpy(array)


@functools.cache
def colormap_table(name: str, n_values: int = 256) -> np.ndarray:
    """The RGBA colours (0-255, ``n_values`` rows) of a matplotlib colormap, as a lookup table holds them.

    Only matplotlib's colormaps are read (not pyplot): the app's views open without importing pyplot.
    """
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0, 1, n_values)) * 255).astype(np.uint8)


class VertexNormals:
    """Area-weighted vertex normals of one topology, fast enough to recompute at every sample switch."""

    def __init__(self, triangles: np.ndarray, n_vertices: int) -> None:
        import scipy.sparse as sp

        self.triangles = np.asarray(triangles, dtype=np.int64)
        rows = self.triangles.ravel()
        cols = np.repeat(np.arange(len(self.triangles)), 3)
        self.incidence = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)),
                                       shape=(n_vertices, len(self.triangles)))

    def __call__(self, vertices: np.ndarray) -> np.ndarray:
        v = np.asarray(vertices, dtype=np.float32)
        a, b, c = v[self.triangles[:, 0]], v[self.triangles[:, 1]], v[self.triangles[:, 2]]
        normals = np.asarray(self.incidence @ np.cross(b - a, c - a))
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        return (normals / np.maximum(length, 1e-12)).astype(np.float32)


class FaceSurface:
    """One face on a renderer, whose points and scalars are replaced in place.

    The polydata, mapper, actor and scalar bar are made once per topology; showing another
    sample of the same topology only writes new numbers into them (no new actors). ``target`` is
    a VTK renderer (the app's views) or a pyvista plotter (headless figures, whose callers style
    the actor through pyvista's ``actor.prop``); everything else here is plain VTK, so the app
    draws faces without importing pyvista's plotting (and with it matplotlib.pyplot).
    """

    VALUES = "values"

    def __init__(self, target, triangles: np.ndarray, vertices: np.ndarray, scalar_title: str,
                 font_scale: float = 1.0) -> None:
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkProperty
        from vtkmodules.vtkCommonCore import vtkLookupTable

        self.renderer = getattr(target, "renderer", target)
        self.normals = VertexNormals(triangles, len(vertices))
        self.mesh = face_polydata(vertices, triangles)
        self._points = _numpy_points(self.mesh)
        self._normal_values = _point_array(self.mesh, "Normals", 3)
        self._normal_values[:] = self.normals(vertices)
        self.mesh.GetPointData().SetActiveNormals("Normals")
        self._values = _point_array(self.mesh, self.VALUES)
        self.lookup_table = vtkLookupTable()
        self.colormap = ""
        self._use_colormap(DEFAULT_COLORMAP)
        self.mapper = vtkPolyDataMapper()
        self.mapper.SetInputData(self.mesh)
        self.mapper.SetScalarModeToUsePointFieldData()
        self.mapper.SelectColorArray(self.VALUES)
        self.mapper.SetLookupTable(self.lookup_table)
        self.mapper.SetUseLookupTableScalarRange(False)
        self.mapper.SetInterpolateScalarsBeforeMapping(True)
        self.mapper.SetScalarVisibility(False)
        pyvista_plotter = hasattr(target, "add_actor")
        if pyvista_plotter:
            import pyvista as pv

            self.actor = pv.Actor(mapper=self.mapper)
        else:
            self.actor = vtkActor()
            self.actor.SetMapper(self.mapper)
        prop = self.actor.GetProperty()
        prop.SetColor(*SKIN)
        prop.SetInterpolationToGouraud()
        prop.SetAmbient(0.12)
        prop.SetDiffuse(0.85)
        prop.SetSpecular(0.2)
        prop.SetSpecularPower(18.0)
        backface = vtkProperty()       # flat-shaded, as pyvista's Property was
        backface.SetColor(*BACKFACE)
        backface.SetAmbient(0.4)
        backface.SetDiffuse(0.6)
        backface.SetInterpolationToFlat()
        self.actor.SetBackfaceProperty(backface)
        if pyvista_plotter:
            target.add_actor(self.actor, reset_camera=False, render=False, name=None)
        else:
            self.renderer.AddActor(self.actor)
        self.scalar_title = scalar_title
        self.font_scale = font_scale
        self.bar = None
        self._make_bar(scalar_title)
        self.has_scalars = False

    # ---- scalar bar ------------------------------------------------------------------------
    def _make_bar(self, title: str) -> None:
        from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor

        s = self.font_scale
        bar = vtkScalarBarActor()
        bar.SetLookupTable(self.lookup_table)
        bar.SetTitle(title)
        bar.SetOrientationToHorizontal()          # under the face: never over it, whatever the view's width
        bar.SetNumberOfLabels(5)
        bar.SetTextPositionToPrecedeScalarBar()   # horizontal: labels under the bar, the title above
        bar.UnconstrainedFontSizeOn()             # fixed pixel sizes: readable at any view width
        bar.SetBarRatio(0.3)
        bar.SetTitleRatio(0.4)
        bar.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        bar.SetPosition(0.15, 0.015)
        bar.SetPosition2(0.70, 0.13)
        bar.SetMaximumHeightInPixels(int(round(78 * s)))
        bar.SetVerticalTitleSeparation(int(round(5 * s)))
        for prop, size in ((bar.GetTitleTextProperty(), BAR_TITLE_FONT), (bar.GetLabelTextProperty(), BAR_LABEL_FONT)):
            prop.SetColor(*TEXT_COLOUR)
            prop.SetFontSize(int(round(size * s)))
            prop.BoldOff()
            prop.ItalicOff()
            prop.ShadowOff()
        bar.SetVisibility(False)
        self.renderer.AddViewProp(bar)
        self.bar = bar

    def set_bar_title(self, title: str) -> None:
        if title and title != self.scalar_title:
            self.scalar_title = title
            self.bar.SetTitle(title)

    # ---- contents --------------------------------------------------------------------------
    def _use_colormap(self, name: str) -> None:
        if name != self.colormap:
            from vtkmodules.util.numpy_support import numpy_to_vtk

            self.lookup_table.SetTable(numpy_to_vtk(colormap_table(name), deep=True))
            self.colormap = name

    def set_vertices(self, vertices: np.ndarray) -> None:
        vertices = np.asarray(vertices, dtype=np.float32)
        if np.array_equal(self._points, vertices):
            return      # the same face (a subject's neutral while its expressions are browsed): no normals, no upload
        self._points[:] = vertices                # in place: the same vtkPoints
        self._normal_values[:] = self.normals(vertices)
        self.mesh.GetPoints().Modified()
        self.mesh.GetPointData().GetNormals().Modified()
        self.mesh.Modified()

    def set_scalars(self, values: np.ndarray | None) -> None:
        self.has_scalars = values is not None
        if values is not None:
            self._values[:] = np.asarray(values, dtype=np.float32)
            self.mesh.GetPointData().GetArray(self.VALUES).Modified()
            self.mesh.Modified()
        self.mapper.SetScalarVisibility(self.has_scalars)
        self.bar.SetVisibility(self.has_scalars and self.actor.GetVisibility())

    def set_style(self, style: DisplayStyle, limits: tuple[float, float]) -> None:
        self._use_colormap(style.colormap)
        self.lookup_table.SetTableRange(*limits)
        self.mapper.SetScalarRange(*limits)
        self.bar.SetLabelFormat(bar_format(limits[1]))
        prop = self.actor.GetProperty()
        prop.SetEdgeVisibility(bool(style.wireframe))
        prop.SetEdgeColor(0.2, 0.2, 0.2)
        prop.SetLineWidth(0.5)

    def set_above_range_colour(self, colour: tuple[float, float, float] | None) -> None:
        """Paint values above the colour range in ``colour`` (None: in the colormap's top colour)."""
        if colour is not None:
            self.lookup_table.SetAboveRangeColor(*colour, 1.0)
        self.lookup_table.SetUseAboveRangeColor(colour is not None)

    def set_visible(self, visible: bool) -> None:
        self.actor.SetVisibility(visible)
        self.bar.SetVisibility(visible and self.has_scalars)

    @property
    def points(self) -> np.ndarray:
        return self._points

    @property
    def scalars(self) -> np.ndarray | None:
        return self._values if self.has_scalars else None

    def remove(self) -> None:
        self.renderer.RemoveViewProp(self.actor)
        self.renderer.RemoveViewProp(self.bar)


def _numpy_points(mesh) -> np.ndarray:
    """A writable numpy view of ``mesh``'s points."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    return vtk_to_numpy(mesh.GetPoints().GetData())


def make_text(plotter, text: str, anchor: tuple[float, float], size: float, colour=TEXT_COLOUR,
              offset_px: tuple[float, float] = (0.0, 0.0), vertical: str = "top"):
    """A centred 2D text at ``anchor`` (normalised viewport) moved by ``offset_px`` pixels.

    Offsets in pixels keep titles at the same distance from the top edge whatever the view's size.
    """
    from vtkmodules.vtkRenderingCore import vtkCoordinate, vtkTextActor

    actor = vtkTextActor()
    actor.SetInput(text)
    reference = vtkCoordinate()
    reference.SetCoordinateSystemToNormalizedViewport()
    reference.SetValue(anchor[0], anchor[1], 0.0)
    position = actor.GetPositionCoordinate()
    position.SetCoordinateSystemToViewport()
    position.SetReferenceCoordinate(reference)
    position.SetValue(offset_px[0], offset_px[1], 0.0)
    actor._facelab_reference = reference  # keep it alive with the actor
    prop = actor.GetTextProperty()
    prop.SetFontSize(int(round(size)))
    prop.SetColor(*colour)
    prop.SetJustificationToCentered()
    {"top": prop.SetVerticalJustificationToTop, "center": prop.SetVerticalJustificationToCentered,
     "bottom": prop.SetVerticalJustificationToBottom}[vertical]()
    plotter.renderer.AddViewProp(actor)
    return actor


def title_offsets(scale: float = 1.0) -> tuple[tuple[float, float], tuple[float, float]]:
    """Pixel offsets from the top centre of a view of its title and subtitle."""
    top = -8.0 * scale
    return (0.0, top), (0.0, top - (TITLE_FONT * 1.45) * scale)


# ---- cameras -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraState:
    position: tuple[float, float, float]
    focal_point: tuple[float, float, float]
    view_up: tuple[float, float, float]
    view_angle: float = 30.0
    parallel_projection: bool = False
    parallel_scale: float = 1.0

    @classmethod
    def of(cls, camera) -> CameraState:
        return cls(tuple(camera.GetPosition()), tuple(camera.GetFocalPoint()), tuple(camera.GetViewUp()),
                   camera.GetViewAngle(), bool(camera.GetParallelProjection()), camera.GetParallelScale())

    def apply(self, camera) -> None:
        camera.SetPosition(*self.position)
        camera.SetFocalPoint(*self.focal_point)
        camera.SetViewUp(*self.view_up)
        camera.SetViewAngle(self.view_angle)
        camera.SetParallelProjection(self.parallel_projection)
        camera.SetParallelScale(self.parallel_scale)


def preset_camera(vertices: Sequence[np.ndarray], preset: str = DEFAULT_VIEW, aspect: float = 1.0,
                  view_angle: float = 30.0, margin: float = 1.15) -> CameraState:
    """A camera looking at the faces from a preset direction, framing them in a view of this aspect."""
    if preset not in VIEW_PRESETS:
        raise FacelabError(f"unknown view '{preset}': expected one of {', '.join(VIEW_PRESETS)}.")
    points = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1, 3) for v in vertices if v is not None])
    direction, up = (np.asarray(x, dtype=np.float64) for x in VIEW_PRESETS[preset])
    direction /= np.linalg.norm(direction)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    right = np.cross(up, direction)
    right /= np.linalg.norm(right)
    true_up = np.cross(direction, right)
    offsets = points - centre
    half_w = np.abs(offsets @ right).max() * margin
    half_h = np.abs(offsets @ true_up).max() * margin
    depth = np.abs(offsets @ direction).max()
    half_angle = math.radians(view_angle) / 2
    needed = max(half_h, half_w / max(aspect, 1e-3))
    distance = needed / math.tan(half_angle) + 0.5 * depth
    # Aim a little below the centre so the face sits a little high in its view.
    focal = centre - 0.06 * needed * true_up
    return CameraState(tuple(focal + distance * direction), tuple(focal), tuple(true_up), view_angle)


# ---- headless figures ------------------------------------------------------------------------------
