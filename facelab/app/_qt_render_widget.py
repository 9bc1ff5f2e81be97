"""One view's VTK render window in a Qt widget: VTK's own ``QVTKRenderWindowInteractor``.

pyvistaqt's ``QtInteractor`` would do as well, but importing it imports pyvista's plotting and
with it matplotlib.pyplot, the largest part of the app's start after torch; a view needs only a
renderer lit by VTK's light kit (as pyvista lights its plotters), trackball rotation and a
synchronous render, which VTK gives directly. The widget is a native child window: X11 (the app
asks Qt for XWayland on a Wayland desktop, see :func:`facelab.app.launch.make_application`),
Windows or macOS.
"""

from __future__ import annotations

import numpy as np
import vtkmodules.qt
from PySide6.QtCore import Qt, Signal

vtkmodules.qt.PyQtImpl = "PySide6"   # read when the module below is imported

import vtkmodules.vtkInteractionStyle  # noqa: E402,F401  (the interactor styles' factories)
import vtkmodules.vtkRenderingFreeType  # noqa: E402,F401  (text)
import vtkmodules.vtkRenderingOpenGL2  # noqa: E402,F401  (the OpenGL render window)
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera  # noqa: E402
from vtkmodules.vtkRenderingCore import vtkLightKit, vtkRenderer, vtkWindowToImageFilter  # noqa: E402

#: Widgets made and not yet closed: the tests check that none outlives them.
OPEN: set = set()


class RenderWidget(QVTKRenderWindowInteractor):
    """A render window with one lit renderer (more may be added), rotated with the mouse."""

    painted = Signal()    # the window was drawn for a paint event (shown, exposed, resized)

    def __init__(self, parent=None, background=(1.0, 1.0, 1.0)) -> None:
        super().__init__(parent)
        self.ren_win = self.GetRenderWindow()
        # Multisampling is switched on once the views know the GPU is no software renderer
        # (see ThreeViews): on llvmpipe it makes every render several times slower.
        self.ren_win.SetMultiSamples(0)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(*background)
        vtkLightKit().AddLightsToRenderer(self.renderer)
        self.ren_win.AddRenderer(self.renderer)
        self.interactor = self.ren_win.GetInteractor()
        self.interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        # No VTK key bindings ('q' would close the view, 'w' bypass the wireframe toggle): the
        # views take no keyboard focus, so arrow keys stay with the dataset browser.
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for event in ("CharEvent", "KeyPressEvent"):
            self.interactor.RemoveObservers(event)
        self.interactor.Initialize()
        self.closed = False
        OPEN.add(self)

    def draw(self) -> None:
        """Render the window now (and show it)."""
        if not self.closed:
            self.ren_win.Render()

    def paintEvent(self, event) -> None:  # noqa: N802
        if not self.closed:
            self.ren_win.Render()
            self.painted.emit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        if not self.closed:
            super().resizeEvent(event)

    def image(self) -> np.ndarray:
        """The window's pixels (height, width, 3), as last drawn (rendered again first)."""
        from vtkmodules.util.numpy_support import vtk_to_numpy

        grabber = vtkWindowToImageFilter()
        grabber.SetInput(self.ren_win)
        grabber.SetInputBufferTypeToRGB()
        grabber.ReadFrontBufferOff()
        grabber.Update()
        image = grabber.GetOutput()
        width, height, _ = image.GetDimensions()
        return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[::-1].copy()

    def close_window(self) -> None:
        """Release the OpenGL context, destroy the native window and let the render window go now,
        while the X server is there (a render window destroyed after it is gone, as a test's
        virtual X server is before the process ends, kills the process with an X I/O error)."""
        if self.closed:
            return
        self.closed = True
        OPEN.discard(self)
        self.ren_win.Finalize()
        self.close()
        self.destroy()
        # The observers' callbacks hold this widget, which holds the render window: a cycle
        # through VTK that Python's collector cannot see.
        for vtk_object in (self.ren_win, self.interactor):
            vtk_object.RemoveAllObservers()
        self.interactor.SetRenderWindow(None)
        self.ren_win.SetInteractor(None)
        self.ren_win.RemoveRenderer(self.renderer)
        self.ren_win = self.interactor = self._RenderWindow = self._Iren = None

    def closeEvent(self, event) -> None:  # noqa: N802
        self.closed = True
        OPEN.discard(self)
        if self._RenderWindow is not None:
            super().closeEvent(event)
