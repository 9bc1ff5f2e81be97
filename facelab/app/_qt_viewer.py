"""The three linked views: input, predicted neutral, ground-truth neutral.

Three VTK render windows in Qt widgets (:mod:`facelab.app._qt_render_widget`) share one camera,
so rotating or zooming one moves the others; a camera observer re-renders the other two. Each
view holds one :class:`~facelab.render.FaceSurface` per topology: switching samples writes new
points, normals and scalars into the existing polydata (no new actors), then renders each window
once.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QSizePolicy, QWidget

from facelab.figure import FigureRequest
from facelab.figure_frame import ViewFrame
from facelab.render import (
    BACKGROUND,
    DEFAULT_VIEW,
    ERROR_TITLE,
    CameraState,
    DisplayStyle,
    FaceSurface,
    Panel,
    colour_limits,
    preset_camera,
)

KEYS = ("input", "predicted", "truth")
SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "SwiftShader", "OSMesa")
#: Multisamples on a GPU (VTK's default); a software renderer gets none.
GPU_MULTI_SAMPLES = 8


class _View:
    """One render window with its face between a title band and a colour-bar band (:class:`ViewFrame`)."""

    def __init__(self, parent: QWidget, key: str) -> None:
        from facelab.app._qt_render_widget import RenderWidget

        self.key = key
        self.widget = RenderWidget(parent, BACKGROUND)
        self.widget.setAcceptDrops(False)          # drops go to the main window
        self.widget.setMinimumSize(200, 220)
        self.widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.frame = ViewFrame(self.widget.ren_win, self.widget.renderer)
        self.title, self.subtitle, self.note = self.frame.title, self.frame.subtitle, self.frame.note
        self.surface: FaceSurface | None = None

    @property
    def renderer(self):
        return self.widget.renderer

    def set_surface(self, triangles: np.ndarray, vertices: np.ndarray) -> None:
        if self.surface is not None:
            self.surface.remove()
        self.surface = FaceSurface(self.widget.renderer, triangles, vertices, ERROR_TITLE)
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
        self.widget.close_window()


class ThreeViews(QWidget):
    """The central widget: three views side by side with one camera."""

    rendered = Signal(float)   # seconds the last update + render took (0 for the first frame)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        self.views = {key: _View(self, key) for key in KEYS}
        for view in self.views.values():
            layout.addWidget(view.widget)
            view.widget.painted.connect(lambda key=view.key: self._on_painted(key))
            # A drag turns the shared camera, whose observer renders all three once: the
            # interactor's own render of the view under the mouse would draw it twice.
            view.widget.interactor.EnableRenderOff()
        self.camera = self.views["input"].renderer.GetActiveCamera()
        for key in KEYS[1:]:
            self.views[key].renderer.SetActiveCamera(self.camera)
        self._observer = self.camera.AddObserver("ModifiedEvent", self._camera_moved)
        self._render_pending = False
        self._rendering = False
        self.last_render_s = 0.0     # the three windows' last render_all, in seconds
        self._closed = False
        self.topology_key: tuple | None = None
        self.triangles: np.ndarray | None = None
        self._triangles_given = None         # the array set_topology was last given (skips hashing it again)
        self._painted: set[str] = set()      # views drawn at least once: the first frame is all three
        self.panels: list[Panel] = [Panel("", None) for _ in KEYS]
        self.style = DisplayStyle()
        self.limits = (0.0, 1.0)
        self.view_preset = DEFAULT_VIEW
        self._camera_placed = False
        self._antialiasing_tuned = False
        self._first_frame_shown = False
        self.software_gl: bool | None = None
        self.camera_moved_by_user = False     # once the user rotates or zooms, resizing keeps their view
        self._refit = QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(50)
        self._refit.timeout.connect(self._refit_preset)

    # ---- contents ----------------------------------------------------------------------------
    def widget(self, key: str):
        return self.views[key].widget

    def surface(self, key: str) -> FaceSurface | None:
        return self.views[key].surface

    def set_topology(self, triangles: np.ndarray, vertices: np.ndarray) -> bool:
        """Make the surfaces for a topology; a no-op (False) when it is the one shown."""
        if triangles is self._triangles_given and self.topology_key is not None \
                and len(vertices) == self.topology_key[0]:
            return False
        given = triangles
        triangles = np.asarray(triangles, dtype=np.int64)
        key = (len(vertices), triangles.shape, hash(triangles.tobytes()))
        self._triangles_given = given
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
        take ~100 ms instead of ~35. The windows start without it and a GPU gets it after the
        first frame, once the renderer's name is known."""
        if self._antialiasing_tuned or self._closed:
            return
        window = self.views["input"].widget.ren_win
        self._antialiasing_tuned = True
        try:
            report = window.ReportCapabilities() or ""
        except Exception:  # no context: leave the windows as they are
            return
        self.software_gl = any(name in report for name in SOFTWARE_GL)
        if not self.software_gl:
            for view in self.views.values():
                view.widget.ren_win.SetMultiSamples(GPU_MULTI_SAMPLES)
            QTimer.singleShot(0, self.render_all)

    def _on_painted(self, key: str) -> None:
        """A view was drawn for a paint event: once all three have been, the window shows its first frame."""
        if self._first_frame_shown:
            return
        self._painted.add(key)
        if len(self._painted) == len(KEYS):
            self._first_frame_shown = True
            self._tune_antialiasing()
            self.rendered.emit(0.0)

    # ---- camera ------------------------------------------------------------------------------
    def reset_view(self, preset: str = DEFAULT_VIEW, render: bool = True) -> None:
        """Look at the faces from a preset direction (front, side, three-quarter)."""
        self.view_preset = preset
        shown = [p.vertices for p in self.panels if p.vertices is not None]
        if not shown:
            return
        view = self.views["input"]
        width, height = view.widget.width(), view.widget.height()
        # Framed for the face's renderer, between the title and colour-bar bands.
        state = preset_camera(shown, preset, aspect=max(width, 1) / view.frame.face_height(max(height, 1)))
        self._rendering = True
        try:
            state.apply(self.camera)
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
        """Render the three windows, once each (the camera is shared, its clipping range fits
        every face). Hidden windows are drawn when they are first shown."""
        self._render_pending = False
        if self._closed or not self.isVisible():
            return
        self._rendering = True
        started = time.perf_counter()
        try:
            bounds = self._bounds()
            if bounds is not None:
                self.views["input"].renderer.ResetCameraClippingRange(bounds)
            for view in self.views.values():
                view.widget.draw()
        finally:
            self._rendering = False
            self.last_render_s = time.perf_counter() - started

    def _bounds(self):
        shown = [p.vertices for p in self.panels if p.vertices is not None]
        if not shown:
            return None
        low = np.min([np.min(v, axis=0) for v in shown], axis=0)
        high = np.max([np.max(v, axis=0) for v in shown], axis=0)
        return (low[0], high[0], low[1], high[1], low[2], high[2])

    # ---- export ------------------------------------------------------------------------------
    def figure_request(self, keys: tuple[str, ...] = KEYS) -> FigureRequest:
        """What :func:`facelab.figure.render_figure` needs to redraw these views off-screen."""
        ratio = self.devicePixelRatioF()
        widths = [max(1, int(round(self.views[k].widget.width() * ratio))) for k in keys]
        height = max(1, int(round(self.views[keys[0]].widget.height() * ratio)))
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
