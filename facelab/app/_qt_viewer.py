"""The three linked views: input, predicted neutral, ground-truth neutral.

Three pyvistaqt ``QtInteractor`` widgets share one VTK camera, so rotating or zooming one moves
the others; a camera observer re-renders the other two. Each view holds one
:class:`~facelab.render.FaceSurface` per topology: switching samples writes new points,
normals and scalars into the existing polydata (no new actors), then renders the three windows.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QSizePolicy, QWidget

from facelab.figure_frame import ViewFrame
from facelab.render import (
    BACKGROUND,
    DEFAULT_VIEW,
    ERROR_TITLE,
    CameraState,
    DisplayStyle,
    FaceSurface,
    FigureRequest,
    Panel,
    colour_limits,
    preset_camera,
)

KEYS = ("input", "predicted", "truth")
SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "SwiftShader", "OSMesa")


class _View:
    """One QtInteractor with its face between a title band and a colour-bar band (:class:`ViewFrame`)."""

    def __init__(self, parent: QWidget, key: str) -> None:
        from pyvistaqt import QtInteractor

        self.key = key
        self.plotter = QtInteractor(parent, auto_update=False)
        self.plotter.set_background(BACKGROUND)
        self.plotter.setAcceptDrops(False)          # drops go to the main window
        self.plotter.setMinimumSize(200, 220)
        self.plotter.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._quiet_keys()
        self.frame = ViewFrame(self.plotter.ren_win, self.plotter.renderer)
        self.title, self.subtitle, self.note = self.frame.title, self.frame.subtitle, self.frame.note
        self.surface: FaceSurface | None = None

    def _quiet_keys(self) -> None:
        """No VTK/pyvista key bindings ('q' would close a view, 'w' bypass the wireframe toggle):
        the views take no keyboard focus, so arrow keys stay with the dataset browser."""
        from PySide6.QtCore import Qt

        self.plotter.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        interactor = self.plotter.iren.interactor if self.plotter.iren is not None else None
        if interactor is not None:
            interactor.RemoveObservers("CharEvent")
            interactor.RemoveObservers("KeyPressEvent")

    @property
    def renderer(self):
        return self.plotter.renderer

    def set_surface(self, triangles: np.ndarray, vertices: np.ndarray) -> None:
        if self.surface is not None:
            self.surface.remove()
        self.surface = FaceSurface(self.plotter, triangles, vertices, ERROR_TITLE)
        self.frame.adopt(self.surface)

    def show(self, panel: Panel, style: DisplayStyle, limits: tuple[float, float]) -> None:
        surface = self.surface
        self.frame.show_text(panel, with_face=panel.vertices is not None and surface is not None)
        if panel.vertices is None or surface is None:
            if surface is not None:
                surface.set_visible(False)
            self.frame.show_scalars(None, None, "", style, limits)
            return
        surface.set_vertices(panel.vertices)
        if panel.scalar_title:
            surface.set_bar_title(panel.scalar_title)
        surface.set_style(style, limits)
        surface.set_visible(True)
        surface.set_scalars(panel.scalars)
        self.frame.show_scalars(surface, panel.scalars, surface.scalar_title, style, limits)

    def restyle(self, style: DisplayStyle, limits: tuple[float, float]) -> None:
        surface = self.surface
        if surface is not None:
            surface.set_style(style, limits)
            self.frame.show_scalars(surface, surface.scalars, surface.scalar_title, style, limits)

    def close(self) -> None:
        self.surface = None
        self.frame.close()
        self.plotter.close()


class ThreeViews(QWidget):
    """The central widget: three views side by side with one camera."""

    rendered = Signal(float)   # seconds the last update + render took

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        self.views = {key: _View(self, key) for key in KEYS}
        for view in self.views.values():
            layout.addWidget(view.plotter)
        self.camera = self.views["input"].renderer.camera
        for key in KEYS[1:]:
            self.views[key].renderer.camera = self.camera
        self._observer = self.camera.AddObserver("ModifiedEvent", self._camera_moved)
        self._render_pending = False
        self._rendering = False
        self._closed = False
        self.topology_key: tuple | None = None
        self.triangles: np.ndarray | None = None
        self.panels: list[Panel] = [Panel("", None) for _ in KEYS]
        self.style = DisplayStyle()
        self.limits = (0.0, 1.0)
        self.view_preset = DEFAULT_VIEW
        self._camera_placed = False
        self._antialiasing_tuned = False
        self.software_gl: bool | None = None
        self.camera_moved_by_user = False     # once the user rotates or zooms, resizing keeps their view
        self._refit = QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(50)
        self._refit.timeout.connect(self._refit_preset)

    # ---- contents ----------------------------------------------------------------------------
    def plotter(self, key: str):
        return self.views[key].plotter

    def surface(self, key: str) -> FaceSurface | None:
        return self.views[key].surface

    def set_topology(self, triangles: np.ndarray, vertices: np.ndarray) -> bool:
        """Make the surfaces for a topology; a no-op (False) when it is the one shown."""
        triangles = np.asarray(triangles, dtype=np.int64)
        key = (len(vertices), triangles.shape, hash(triangles.tobytes()))
        if key == self.topology_key:
            return False
        self.topology_key = key
        self.triangles = triangles
        for view in self.views.values():
            view.set_surface(triangles, vertices)
        self._camera_placed = False
        return True

    def show_panels(self, panels: list[Panel], style: DisplayStyle | None = None) -> float:
        """Show three panels (in place when the topology is unchanged); returns the seconds taken."""
        started = time.perf_counter()
        if style is not None:
            self.style = style
        self.panels = list(panels)
        first = next((p.vertices for p in panels if p.vertices is not None), None)
        if first is not None and self.triangles is not None and len(first) != self.topology_key[0]:
            raise ValueError("the panels' vertex count differs from the topology shown: call set_topology first")
        self.limits = colour_limits([p.scalars for p in panels], self.style)
        self._tune_antialiasing()
        for key, panel in zip(KEYS, panels):
            self.views[key].show(panel, self.style, self.limits)
        if not self._camera_placed and first is not None:
            self.reset_view(self.view_preset, render=False)
        self.render_all()
        seconds = time.perf_counter() - started
        self.rendered.emit(seconds)
        return seconds

    def set_style(self, style: DisplayStyle) -> None:
        self.style = style
        self.limits = colour_limits([p.scalars for p in self.panels], style)
        for view in self.views.values():
            view.restyle(style, self.limits)
        self.render_all()

    def _tune_antialiasing(self) -> None:
        """Multisampling quadruples the cost of a software (llvmpipe) render: three views then
        take ~100 ms instead of ~35, so it is switched off there; GPUs keep it."""
        if self._antialiasing_tuned or not self.isVisible():
            return
        self._antialiasing_tuned = True
        try:
            report = self.views["input"].plotter.ren_win.ReportCapabilities() or ""
        except Exception:  # no context yet: leave the defaults
            return
        self.software_gl = any(name in report for name in SOFTWARE_GL)
        if self.software_gl:
            for view in self.views.values():
                view.plotter.ren_win.SetMultiSamples(0)

    # ---- camera ------------------------------------------------------------------------------
    def reset_view(self, preset: str = DEFAULT_VIEW, render: bool = True) -> None:
        """Look at the faces from a preset direction (front, side, three-quarter)."""
        self.view_preset = preset
        shown = [p.vertices for p in self.panels if p.vertices is not None]
        if not shown:
            return
        view = self.views["input"]
        width, height = view.plotter.width(), view.plotter.height()
        # Framed for the face's renderer, between the title and colour-bar bands.
        state = preset_camera(shown, preset, aspect=max(width, 1) / view.frame.face_height(max(height, 1)))
        self._rendering = True
        try:
            state.apply(self.camera)
            for view in self.views.values():
                view.renderer.camera_set = True
        finally:
            self._rendering = False
        self._camera_placed = True
        self.camera_moved_by_user = False
        if render:
            self.render_all()

    def resizeEvent(self, event) -> None:  # noqa: N802
        """A preset view is framed for the views' shape: frame it again when they change shape."""
        super().resizeEvent(event)
        if self._camera_placed and not self.camera_moved_by_user and not self._closed:
            self._refit.start()

    def _refit_preset(self) -> None:
        if self._camera_placed and not self.camera_moved_by_user and not self._closed:
            self.reset_view(self.view_preset)

    def camera_state(self) -> CameraState:
        return CameraState.of(self.camera)

    def _camera_moved(self, *_args) -> None:
        if self._rendering or self._closed:
            return
        self.camera_moved_by_user = True
        if self._render_pending:
            return
        self._render_pending = True
        QTimer.singleShot(0, self.render_all)

    def render_all(self) -> None:
        """Render the three windows (the camera is shared, its clipping range fits every face)."""
        self._render_pending = False
        if self._closed:
            return
        self._rendering = True
        try:
            bounds = self._bounds()
            if bounds is not None:
                self.views["input"].renderer.ResetCameraClippingRange(bounds)
            for view in self.views.values():
                view.plotter.render()
        finally:
            self._rendering = False

    def _bounds(self):
        shown = [p.vertices for p in self.panels if p.vertices is not None]
        if not shown:
            return None
        low = np.min([np.min(v, axis=0) for v in shown], axis=0)
        high = np.max([np.max(v, axis=0) for v in shown], axis=0)
        return (low[0], high[0], low[1], high[1], low[2], high[2])

    # ---- export ------------------------------------------------------------------------------
    def figure_request(self, keys: tuple[str, ...] = KEYS) -> FigureRequest:
        """What :func:`facelab.render.render_figure` needs to redraw these views off-screen."""
        ratio = self.devicePixelRatioF()
        widths = [max(1, int(round(self.views[k].plotter.width() * ratio))) for k in keys]
        height = max(1, int(round(self.views[keys[0]].plotter.height() * ratio)))
        panels = [self.panels[KEYS.index(k)] for k in keys]
        camera = self.camera_state()
        return FigureRequest(panels, self.triangles if self.triangles is not None else np.zeros((0, 3), np.int64),
                             widths, height, camera, self.limits, self.style)

    # ---- life --------------------------------------------------------------------------------
    def close_views(self) -> None:
        """Close the interactors (their render windows are finalised); call before the window goes."""
        if self._closed:
            return
        self._closed = True
        try:
            self.camera.RemoveObserver(self._observer)
        except Exception:  # the camera may be gone already
            pass
        for view in self.views.values():
            view.close()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_views()
        super().closeEvent(event)
