"""The figure of every mesh of a folder or dataset, as ``facelab render`` draws one mesh's figure.

Each figure has the panels, colours, camera and size of :func:`facelab.figure.render_sample`
(input, predicted neutral and, when the dataset pairs the mesh with a neutral, the ground truth),
drawn off-screen by the same building blocks. What changes is the pace: the model predicts a
chunk of meshes at once on a background thread, one off-screen window per panel count is kept and
redrawn for every figure (opening a window and resizing it cost more than drawing), and the PNGs
are encoded and written on background threads.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facelab.batch.neutralise import output_paths
from facelab.batch.sources import (
    DEFAULT_WORKERS,
    LoadedMesh,
    MeshInput,
    MeshSource,
    check_generated,
    loaded_chunks,
    log_above_bar,
    warn_skipped,
)
from facelab.errors import FacelabError
from facelab.evaluation.metrics import per_vertex_error
from facelab.render import (
    DEFAULT_VIEW,
    ERROR_TITLE,
    PANEL_SIZE,
    DisplayStyle,
    FaceSurface,
    Panel,
    colour_limits,
    figure_panels,
    preset_camera,
)

log = logging.getLogger(__name__)

FIGURE_FORMAT = "png"
#: Meshes per model call: drawing, not predicting, sets the pace, and a small first chunk lets it start early.
RENDER_BATCH_SIZE = 8


@dataclass
class RenderReport:
    """What :func:`render_meshes` did.

    Attributes:
        out: the output folder.
        written: the figures drawn by this run (paths).
        kept: the figures that existed already and were left as they were.
        skipped: (input, reason) of each mesh that could not be drawn.
    """

    out: Path
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def nothing_done(self) -> bool:
        """No figure was drawn now or kept from before."""
        return not self.written and not self.kept

    def summary(self, source: str | os.PathLike) -> str:
        """What ``facelab render DATA --out DIR`` prints: counts, and each skipped mesh with the reason.

        Raises:
            FacelabError: no mesh of ``source`` could be drawn.
        """
        if self.nothing_done and self.skipped:
            label, reason = self.skipped[0]
            raise FacelabError(f"none of the {len(self.skipped)} meshes of {source} could be drawn (first: "
                               f"{label}: {reason.rstrip('.')}).")
        lines = [f"wrote {len(self.written)} figures to {self.out}"
                 + (f", kept {len(self.kept)} from an earlier run (--overwrite redraws them)" if self.kept else "")]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} mesh(es) that could not be drawn:")
            lines += [f"  {label}: {reason}" for label, reason in self.skipped]
        return "\n".join(lines)


class FigureCanvas:
    """One off-screen window laid out as :func:`facelab.figure.render_figure` lays out a figure of
    ``panel_count`` panels, redrawn for each figure: the same frames (title and colour-bar bands),
    surfaces, colour range and camera, without opening a window per figure."""

    def __init__(self, triangles: np.ndarray, n_vertices: int, panel_count: int, style: DisplayStyle,
                 scale: float = 1.0, transparent: bool = False, view: str = DEFAULT_VIEW) -> None:
        import pyvista as pv

        from facelab.figure_frame import ViewFrame, face_height, figure_palette
        from facelab.figure import column_spans, prefer_egl_without_display

        prefer_egl_without_display()
        self.style, self.scale, self.transparent, self.view = style, scale, transparent, view
        width, self.height = int(round(PANEL_SIZE[0] * scale)), int(round(PANEL_SIZE[1] * scale))
        self.size = (width * panel_count, self.height)
        self.aspect = width / face_height(self.height, scale)
        self.plotter = pv.Plotter(off_screen=True, window_size=self.size, border=False, lighting="light kit",
                                  shape=(1, panel_count))
        palette = figure_palette(transparent)
        placeholder = np.zeros((n_vertices, 3), dtype=np.float32)
        self.frames, self.surfaces = [], []
        for index, columns in enumerate(column_spans([width] * panel_count)):
            self.plotter.subplot(0, index)
            if palette.background is not None:
                self.plotter.renderer.set_background(palette.background)
            frame = ViewFrame(self.plotter.ren_win, self.plotter.renderer, scale, palette, columns)
            surface = FaceSurface(self.plotter, triangles, placeholder, ERROR_TITLE, font_scale=scale)
            frame.adopt(surface)
            surface.actor.prop.line_width = 0.5 * scale
            self.frames.append(frame)
            self.surfaces.append(surface)

    def draw(self, panels: list[Panel]) -> np.ndarray:
        """The figure of ``panels`` (each with vertices) as an image array (height, width, 3 or 4)."""
        limits = colour_limits([panel.scalars for panel in panels], self.style)
        camera = preset_camera([panel.vertices for panel in panels], self.view, aspect=self.aspect)
        for index, (panel, surface, frame) in enumerate(zip(panels, self.surfaces, self.frames)):
            frame.show_text(panel)
            surface.set_vertices(panel.vertices)
            surface.set_bar_title(panel.scalar_title or ERROR_TITLE)
            surface.set_style(self.style, limits)
            surface.set_scalars(panel.scalars)
            frame.show_scalars(surface, panel.scalars, panel.scalar_title, self.style, limits)
            renderer = self.plotter.renderers[index]
            camera.apply(renderer.camera)
            renderer.camera_set = True  # else pyvista resets it on the first render
            renderer.ResetCameraClippingRange()
        self.plotter.render()
        return self.plotter.screenshot(None, transparent_background=self.transparent, return_img=True)

    def close(self) -> None:
        for frame in self.frames:
            frame.close()
        self.plotter.close()


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    from facelab.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def render_meshes(model, source: MeshSource, out: str | os.PathLike, *, style: DisplayStyle | None = None,
                  scale: float = 1.0, transparent: bool = False, view: str = DEFAULT_VIEW, overwrite: bool = False,
                  batch_size: int = RENDER_BATCH_SIZE, workers: int = DEFAULT_WORKERS,
                  progress: bool = True) -> RenderReport:
    """Draw the figure of every mesh of ``source`` into ``out`` as ``facelab render`` draws one.

    Figures mirror the input's layout: each mesh's relative path with ``.png`` (names that would
    collide, ``a.obj`` and ``a.ply``, get ``_2``...). A mesh the dataset pairs with a neutral gets
    three panels with its error coloured, any other two. Files are written atomically: a stopped
    run leaves only complete figures, and the next run keeps them.

    Args:
        model: a :class:`~facelab.model.FaceLabModel`.
        source: what :func:`~facelab.batch.list_meshes` listed.
        out: the output folder (created when missing).
        style: colours and colour range of every figure (default :class:`DisplayStyle`).
        scale: each panel is 480 x 540 pixels times this.
        transparent: a transparent background.
        view: the camera preset (see :data:`facelab.render.VIEW_PRESETS`).
        overwrite: draw again the figures that exist; by default they are kept.
        batch_size: meshes per model call.
        workers: threads that read meshes and write figures.
        progress: show a tqdm bar (figures/s).

    Raises:
        FacelabError: ``out`` is a file, the style or scale is invalid, or generated data is not
            registered to the model's template. A mesh that cannot be read or drawn is not an
            error: it is skipped with a warning naming it and listed in the report.
        KeyboardInterrupt: after the figures being written are complete.
    """
    style = (style or DisplayStyle()).validate()
    if not 0.25 <= scale <= 8:
        raise FacelabError(f"the figure scale must lie between 0.25 and 8, got {scale}.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FacelabError(f"{out} is a file: expected a folder to write the figures into.")
    outputs = output_paths(source, out, FIGURE_FORMAT)
    check_generated(source, model)
    for message in source.warnings:
        log.warning(message)
    run = _RenderingRun(model, source, out, outputs, style, scale, transparent, view)
    todo = []
    for item in source.inputs:
        if overwrite or not outputs[item.position].exists():
            todo.append(item)
        else:
            run.report.kept.append(outputs[item.position])
    run.draw(todo, batch_size, workers, progress)
    return run.report


class _RenderingRun:
    """One :func:`render_meshes` run: read ahead, predict ahead, draw, write behind."""

    def __init__(self, model, source: MeshSource, out: Path, outputs: list[Path], style: DisplayStyle,
                 scale: float, transparent: bool, view: str) -> None:
        self.model, self.source, self.outputs = model, source, outputs
        self.style, self.scale, self.transparent, self.view = style, scale, transparent, view
        self.report = RenderReport(out)
        self.canvases: dict[int, FigureCanvas] = {}  # by panel count: with and without a ground truth
        self.in_flight: deque[tuple[MeshInput, Future]] = deque()
        self.bar = None

    def skip(self, label: str, reason: str) -> None:
        warn_skipped(label, reason)
        self.report.skipped.append((label, reason))
        self.bar.update(1)

    def draw(self, todo: list[MeshInput], batch_size: int, workers: int, progress: bool) -> None:
        show = progress and bool(todo)
        self.bar = tqdm(total=len(todo), desc=f"Rendering into {self.report.out.name}", unit="figure",
                        disable=not show)
        readers = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="facelab-read")
        predictor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facelab-predict")
        writers = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="facelab-write")
        try:
            with log_above_bar(show):
                if todo:
                    self.report.out.mkdir(parents=True, exist_ok=True)
                waiting = None  # the chunk whose prediction runs while the one before it is drawn
                for chunk in loaded_chunks(self.source, todo, self.model, readers, batch_size, with_truth=True):
                    for loaded in chunk:
                        if loaded.failure is not None:
                            self.skip(loaded.item.label, loaded.failure)
                    ready = [loaded for loaded in chunk if loaded.failure is None]
                    following = None
                    if ready:
                        faces = np.stack([loaded.vertices for loaded in ready])
                        following = (ready, predictor.submit(self.model.neutralise, faces))
                        for loaded in ready:  # open the windows while the model predicts
                            self.canvas(2 if loaded.truth is None else 3)
                    if waiting is not None:
                        self._draw_chunk(*waiting, writers, keep_in_flight=max(1, workers))
                    waiting = following
                if waiting is not None:
                    self._draw_chunk(*waiting, writers, keep_in_flight=0)
                self.settle()
        except KeyboardInterrupt:
            # Nothing more is read or drawn; the figures being written are finished (atomically).
            readers.shutdown(wait=True, cancel_futures=True)
            predictor.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True)
            self.settle()
            raise
        finally:
            readers.shutdown(wait=True, cancel_futures=True)
            predictor.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True)
            for canvas in self.canvases.values():
                canvas.close()
            self.bar.close()

    def _draw_chunk(self, ready: list[LoadedMesh], prediction: Future, writers: ThreadPoolExecutor,
                    keep_in_flight: int) -> None:
        predicted = prediction.result()
        for loaded, neutral in zip(ready, predicted):
            label = loaded.item.label
            if not np.isfinite(neutral).all():
                self.skip(label, "the model's prediction has non-finite vertices")
                continue
            if loaded.note:
                log.warning("%s: drawn without a ground truth, %s", label, loaded.note)
            panels = self._panels(loaded, neutral)
            image = self.canvas(len(panels)).draw(panels)
            self.in_flight.append((loaded.item, writers.submit(_write_png, self.outputs[loaded.item.position], image)))
            self.settle(leave=keep_in_flight)  # images wait in memory for at most a few writes

    def canvas(self, panel_count: int) -> FigureCanvas:
        if panel_count not in self.canvases:
            self.canvases[panel_count] = FigureCanvas(self.model.triangles, self.model.n_vertices, panel_count,
                                                      self.style, self.scale, self.transparent, self.view)
        return self.canvases[panel_count]

    def _panels(self, loaded: LoadedMesh, predicted: np.ndarray) -> list[Panel]:
        """The panels :func:`facelab.figure.render_sample` draws for this mesh and prediction."""
        expressive = np.asarray(loaded.vertices, dtype=np.float32)
        predicted = np.asarray(predicted, dtype=np.float32)
        truth = None if loaded.truth is None else np.asarray(loaded.truth, dtype=np.float32)
        error = None if truth is None else per_vertex_error(predicted, truth).astype(np.float32)
        return figure_panels(expressive, predicted, truth, self.style, error, with_truth_panel=truth is not None)

    def settle(self, leave: int = 0) -> None:
        """Wait for the oldest writes until ``leave`` remain."""
        while len(self.in_flight) > leave:
            item, future = self.in_flight.popleft()
            try:
                future.result()
            except FacelabError as error:  # disk full, no permission
                self.skip(item.label, str(error))
                continue
            self.report.written.append(self.outputs[item.position])
            self.bar.update(1)
