"""The main window: three linked views in the centre, the dataset browser, identity and training
panels in docks, the display controls in a toolbar, the menus (``_qt_menus``), drag and drop.

Every user error (a bad file, a mesh of another template, a corrupt checkpoint) is a
``FacelabError``; it is shown in a message box with its one sentence and the window keeps what it
showed before.

The window shows at once: :meth:`MainWindow.start` reads the data, then torch and the model, in a
thread of their own and fills the views as they arrive (``_qt_window_start``); a training run's
previews and end are answered by ``_qt_training_answers``. Both are parts of the window, kept in
files of their own, and call its private steps. Once a dataset is open, the listed samples are
predicted in the background (a chunk at a time, paused while a run trains), so a click shows a
known prediction and a switch only updates and renders the views.

What is on show, and what applies to it, is the Qt-free :class:`~facelab.app.state.AppState`: the
window builds the widgets, calls the state and re-renders when its events fire, and does what
needs Qt (message boxes, file dialogs, drag and drop, threads).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QThreadPool, Signal, Slot
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from facelab.app import files
from facelab.app._qt_dataset_browser import DatasetBrowser
from facelab.app._qt_display_controls import DisplayControls
from facelab.app._qt_identity_panel import IdentityPanel
from facelab.app._qt_listed_predictions import ListedPredictions
from facelab.app._qt_menus import WindowMenus
from facelab.app._qt_training_answers import TrainingAnswers
from facelab.app._qt_training_panel import TrainingPanel
from facelab.app._qt_viewer import KEYS, ThreeViews
from facelab.app._qt_window_start import WindowStart
from facelab.app.export import render_views_figure
from facelab.app.session import Entry, model_fits_dataset, sampled_identities, train_on_it_question
from facelab.app.settings import AppSettings, Selection
from facelab.app.startup import StartReading, dataset_path
from facelab.app.state import AppState, model_summary
from facelab.app.workers import Call, error_message, run_in_thread
from facelab.errors import FacelabError
from facelab.render import TITLE_TRUTH, DisplayStyle

log = logging.getLogger(__name__)

APP_TITLE = "facelab"
WINDOW_TITLE = f"{APP_TITLE} - neutralise facial expressions"


class MainWindow(QMainWindow):
    sample_shown = Signal(object)        # the Sample on show
    dataset_opened = Signal(object)      # the FaceDataset
    error_shown = Signal(str, str)       # title, message: emitted as a user error's message box opens
    busy_changed = Signal(bool)
    started = Signal()                   # start()'s model and data are open, or their boxes have been shown

    def __init__(self, settings: AppSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.state = AppState()
        self.style_ = self.settings.display_style()
        self.last_switch_s: float | None = None
        self._keep_file_sample = False
        self._pool = QThreadPool(self)                  # the loads below run here; closing waits for exactly them
        self._tasks: list[Call] = []                    # the datasets being loaded
        self._closed = False
        self._start = WindowStart(self)                 # start()'s data and model, as they arrive
        self.predictions = ListedPredictions(self.state, self._pool,
                                             lambda: not self._closed and not self.training.running, self)
        self._restore: Selection | None = self.settings.selection()   # the sample on show when last closed
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self._build_central()
        self._build_docks()
        self._build_toolbar()
        self.menus = WindowMenus(self)
        self._build_status()
        self.state.events.sample.connect(self._on_sample)
        self.state.events.views.connect(self._refresh_views)
        self.state.events.identity.connect(self._refresh_identity)
        self.resize(1560, 980)
        geometry, state = self.settings.window_geometry(), self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self._update_title()
        self._refresh_views()

    # What is on show lives in the state; the window reads it for its callers.
    session = property(lambda self: self.state.session)
    sample = property(lambda self: self.state.sample)
    entry = property(lambda self: self.state.entry)
    preview = property(lambda self: self.state.preview)
    gallery_choice = property(lambda self: self.state.gallery_choice)
    file_triangles = property(lambda self: self.state.file_triangles)
    dataset_source = property(lambda self: self.state.dataset_source)
    dataset_options = property(lambda self: self.state.dataset_options)
    loading = property(lambda self: self.state.loading)

    # ---- construction ------------------------------------------------------------------------
    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        self.viewer = ThreeViews(central)
        layout.addWidget(self.viewer, 1)
        self.readout = QLabel("")
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setMinimumHeight(22)
        self.readout.setWordWrap(True)      # a long readout wraps: it never widens the window or squeezes the docks
        self.readout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.readout)
        self.setCentralWidget(central)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        self.browser = DatasetBrowser()
        self.browser.entry_selected.connect(self.show_entry)
        self.browser.part_changed.connect(lambda _part: self._predict_listed())
        self.browser_dock = self._dock("Dataset", "dataset-dock", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.identity = IdentityPanel()
        self.identity.subject_clicked.connect(self.show_gallery_subject)
        self.identity.training_subject_clicked.connect(self.show_training_subject)
        self.identity_dock = self._dock("Identity", "identity-dock", self.identity, Qt.DockWidgetArea.RightDockWidgetArea)
        self.training = TrainingPanel(self.state)
        self.training_answers = TrainingAnswers(self)
        self.training_dock = self._dock("Training", "training-dock", self.training, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.resizeDocks([self.browser_dock, self.identity_dock], [270, 260], Qt.Orientation.Horizontal)
        self.resizeDocks([self.training_dock], [300], Qt.Orientation.Vertical)

    def _build_toolbar(self) -> None:
        self.controls = DisplayControls(self.style_)
        self.controls.style_changed.connect(self.set_style)
        self.controls.view_requested.connect(self.viewer.reset_view)
        toolbar = QToolBar("Display")
        toolbar.setObjectName("display-toolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(self.controls)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)

    def _build_status(self) -> None:
        self.model_label = QLabel("No model")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(140)
        self.busy.setVisible(False)
        self.statusBar().addPermanentWidget(self.busy)
        self.statusBar().addPermanentWidget(self.model_label)

    # ---- messages ----------------------------------------------------------------------------
    def error(self, title: str, message: str) -> None:
        """A user error: one sentence in a message box; nothing else changes."""
        log.info("%s: %s", title, message)
        self.statusBar().showMessage(message, 10000)
        self.error_shown.emit(title, message)
        QMessageBox.critical(self, title, message)

    def status(self, message: str, timeout_ms: int = 8000) -> None:
        self.statusBar().showMessage(message, timeout_ms)

    def _set_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        self.busy_changed.emit(busy)

    # ---- models --------------------------------------------------------------------------------
    def set_model(self, model, source_label: str | None = None) -> bool:
        """Use ``model``; a model that does not fit the open dataset is refused with a message box."""
        try:
            self.state.set_model(model)
        except FacelabError as error:
            self.error("Cannot use this model", str(error))
            return False
        self._update_model_label(source_label)
        if model is not None:
            self.training.form.load_choices()        # torch is imported now
        self.training.form.model_changed()
        if self.session.dataset is not None:
            # The split follows the model's training settings: list the entries again.
            self.browser.set_dataset(self.browser.title.text(), self.session.entries)
            if self.entry is not None:
                self.browser.select_index(self.entry.index, emit=False)
        self._reshow()
        self._predict_listed()
        return True

    def open_checkpoint(self, path: str | Path) -> bool:
        from facelab.model import FaceLabModel

        try:
            model = FaceLabModel.load(path)
        except FacelabError as error:
            self.error("Cannot open checkpoint", str(error))
            return False
        if not self.set_model(model):
            return False
        self.settings.add_recent(files.CHECKPOINT, path)
        self.settings.remember_folder(files.CHECKPOINT, path)
        self.status(f"Model {path} loaded.")
        return True

    def open_bundled_model(self, interactive: bool = False) -> bool:
        """Use the bundled model. At start-up a missing one leaves the app without a model; asked
        for from the File menu (``interactive``), a failure is a message box and the model on use stays."""
        from facelab.model import FaceLabModel, bundled_model_path

        try:
            model = FaceLabModel.bundled()
        except FacelabError as error:
            if interactive:
                self.error("Cannot open the bundled model", str(error))
                return False
            self._say_no_model(str(error))
            return False
        if not self.set_model(model, f"bundled ({bundled_model_path().name})"):
            return False
        if interactive:
            self.status(f"Bundled model {bundled_model_path()} loaded.")
        return True

    def _say_no_model(self, reason: str) -> None:
        """The bundled model could not be read at start-up: the app runs without predictions."""
        self.status(f"No model: {reason} Browse the data, open a checkpoint (File > Open checkpoint) or train one.",
                    0)
        self.model_label.setText("<span style='color:#b00020'>No model</span>: predictions are off; "
                                 "File &gt; Open checkpoint, or train one")
        self.model_label.setToolTip(reason)

    def _update_model_label(self, source_label: str | None = None) -> None:
        model = self.session.model
        if model is None:
            if self.loading:
                self.model_label.setText("Loading the model ...")
            elif "No model" not in self.model_label.text():
                self.model_label.setText("No model")
            return
        self.model_label.setText(model_summary(model, source_label))
        self.model_label.setToolTip(str(model.source or ""))

    # ---- datasets ------------------------------------------------------------------------------
    def set_dataset(self, dataset, source: str | None = None, options: dict | None = None,
                    select_first: bool = True) -> bool:
        """Show ``dataset`` (already loaded) in the browser. A model that does not fit it is dropped
        only if the user agrees, and the training panel is then set up to train one on it."""
        reason = model_fits_dataset(self.session.model, dataset)
        if reason:
            answer = QMessageBox.question(self, "Train a model on this dataset?", train_on_it_question(reason, dataset))
            if answer != QMessageBox.StandardButton.Yes:
                self.status("Kept the open dataset and model.")
                return False
        self.state.set_dataset(dataset, source, options, keep_sample=not select_first)
        self._update_model_label()
        self.browser.set_dataset(f"<b>{dataset.name}</b><br>{len(dataset.subjects)} subjects, "
                                 f"{len(dataset)} meshes, {len(dataset.pairs)} pairs", self.session.entries)
        if dataset.warnings:
            self.status(f"{dataset.name}: {len(dataset.warnings)} warnings while reading (see facelab inspect).")
        if select_first:
            entry = self._remembered_entry() or self.session.first_entry(self.browser.current_part)
            if entry is not None:
                self.browser.select_index(entry.index, emit=False)
                self.show_entry(entry)
            else:
                self.state.show_nothing()   # nothing of the previous dataset stays on show
        self.browser.focus_list()
        self.training.form.set_open_dataset(dataset.name, sampled_identities(dataset))
        if reason:
            self._offer_training()
        self._predict_listed()
        self.dataset_opened.emit(dataset)
        return True

    def _offer_training(self, reason: str = "") -> None:
        """The open dataset has no model (``reason``: why the one at hand does not fit it): the
        training panel is set up to train one on it."""
        self.training.prepare_new_run_on_open_dataset()
        self.training_dock.show()
        self.training_dock.raise_()
        why = f"{reason[0].upper()}{reason[1:]} " if reason else ""
        self.status(f"{why}{self.session.dataset.name} is open without a model: press Start in the training panel "
                    "to train one on it.", 0)

    def _remembered_entry(self) -> Entry | None:
        """The sample on show when the app was last closed, if it belongs to the dataset opening
        now (the first one opened only); its part of the split is listed again."""
        remembered, self._restore = self._restore, None
        entry = self.state.remembered_entry(remembered)
        if entry is None:
            return None
        if remembered.part != self.browser.current_part:
            self.browser.set_part(remembered.part)
        return entry if self.browser.select_index(entry.index, emit=False) else None

    def open_dataset(self, source: str | Path, options: dict | None = None, format: str | None = None) -> None:
        """Load a dataset in a worker thread; the browser shows it when it is read."""
        from facelab.data.layouts import load_dataset

        path = dataset_path(source)
        options = dict(options or {})
        label = "SynthFaces" if path == "synth" else path
        self.status(f"Loading {label} ...", 0)
        self._set_busy(True)
        self._tasks.append(run_in_thread(
            self._pool, lambda: (path, options, load_dataset(path, format=format, progress=False, **options)),
            self._on_dataset_loaded, self._on_dataset_failed, self._on_task_done))

    @Slot(object)
    def _on_dataset_loaded(self, result) -> None:
        if self._closed:
            return
        path, options, dataset = result
        # `facelab gui INPUT --data D`: the mesh asked for stays on show; otherwise show the data's first sample.
        keep_file_sample, self._keep_file_sample = self._keep_file_sample and self.entry is None, False
        reason = model_fits_dataset(self.session.model, dataset)
        if self.set_dataset(dataset, path, options, select_first=not keep_file_sample):
            self.settings.add_recent(files.DATASET, path)
            if path != "synth":
                self.settings.remember_folder(files.DATASET, path)
            if reason is None:                    # else the status says how to train a model on it
                self.status(f"Opened {dataset.name}.")

    @Slot(object)
    def _on_dataset_failed(self, error: BaseException) -> None:
        if not self._closed:
            log.debug("opening a dataset failed", exc_info=error)
            self.error("Cannot open dataset", error_message(error))

    @Slot()
    def _on_task_done(self) -> None:
        ended = self.sender()                   # the ended call's signals
        self._tasks = [task for task in self._tasks if task.signals is not ended]
        if not self._closed:
            self._set_busy(bool(self._tasks))

    # ---- meshes from files ---------------------------------------------------------------------
    def open_mesh(self, path: str | Path) -> bool:
        """Show an expressive mesh from a file (its prediction, no ground truth yet)."""
        try:
            self.state.open_mesh(path)
        except FacelabError as error:
            self.error("Cannot open mesh", str(error))
            return False
        self.browser.tree.clearSelection()
        self.settings.add_recent(files.MESH, path)
        self.settings.remember_folder(files.MESH, path)
        return True

    def open_ground_truth(self, path: str | Path) -> bool:
        """Measure the sample on show against a neutral mesh from a file."""
        try:
            self.state.open_ground_truth(path)
        except FacelabError as error:
            self.error("Cannot open ground truth", str(error))
            return False
        self.settings.add_recent(files.TRUTH, path)
        self.settings.remember_folder(files.MESH, path)
        return True

    def open_path(self, path: str | Path, target: str | None = None) -> bool:
        """Open whatever ``path`` is (drag and drop, recent files); ``target="truth"`` for a ground truth."""
        try:
            kind = files.classify(path)
        except FacelabError as error:
            self.error("Cannot open", str(error))
            return False
        if kind == files.CHECKPOINT:
            return self.open_checkpoint(path)
        if kind == files.DATASET:
            self.open_dataset(path)
            return True
        if target == files.TRUTH:
            return self.open_ground_truth(path)
        return self.open_mesh(path)

    # ---- showing samples -----------------------------------------------------------------------
    @Slot(object)
    def show_entry(self, entry: Entry) -> float | None:
        """Show one dataset sample; returns the seconds from the request to the rendered views."""
        started = time.perf_counter()
        try:
            self.state.show_entry(entry)
        except FacelabError as error:
            self.error("Cannot show sample", str(error))
            return None
        self.last_switch_s = time.perf_counter() - started
        return self.last_switch_s

    # ---- predictions in the background ---------------------------------------------------------
    def _predict_listed(self) -> None:
        """Predict the listed samples in a worker thread, a chunk at a time from the one on show
        outward, so that a click anywhere in the list shows a known prediction."""
        if self._closed or self.session.model is None or self.session.dataset is None:
            self.predictions.clear()
            return
        self.predictions.restart(self.state.nearest_first(self.browser.visible_entries()))

    def predicting(self) -> bool:
        """Whether listed samples are still to be predicted in the background."""
        return self.predictions.pending()

    def select_index(self, index: int) -> bool:
        """Select a dataset mesh in the browser (as a click would)."""
        return self.browser.select_index(index)

    def _on_sample(self, sample) -> None:
        self._refresh_views()
        self._refresh_identity()
        self.sample_shown.emit(sample)

    def _reshow(self) -> None:
        """Show the sample on show again (after a model change)."""
        if self.entry is not None:
            self.show_entry(self.entry)         # timed, and a failure is a message box
        else:
            self.state.reshow()

    def _refresh_views(self) -> None:
        panels = self.state.panels(self.style_)
        first = next((p.vertices for p in panels if p.vertices is not None), None)
        triangles = self.state.triangles
        if triangles is None:
            triangles = self.viewer.triangles
        if first is not None and triangles is not None:
            self.viewer.set_topology(triangles, first)
        self.viewer.show_panels(panels, self.style_)
        self.readout.setText(self.state.readout())

    def _refresh_identity(self) -> None:
        shown = self.state.identity()
        if shown.top5 is None:
            self.identity.clear(shown.note)
        else:
            self.identity.show_identity(shown.top5, shown.matches, shown.rank, shown.subject, shown.gallery_size,
                                        shown.note, chosen=shown.chosen)

    @Slot(str, int)
    def show_gallery_subject(self, subject: str, index: int) -> None:
        """Show a gallery subject's neutral face in the right view (the error stays to the true neutral)."""
        if self.state.show_gallery_subject(subject, index):
            self._say_right_view()

    @Slot(str)
    def show_training_subject(self, subject: str) -> None:
        """Show a closest training subject's neutral face in the right view, as a gallery click does."""
        if not self.state.show_training_subject(subject):
            message = f"No neutral face of {subject} to show: it is not in the open dataset."
            self.identity.top5.clearSelection()
            self.identity.note.setText(message)
            self.status(message)
            return
        self._say_right_view()

    def _say_right_view(self) -> None:
        subject, _neutral, kind = self.gallery_choice
        self.status(f"Right view: {subject}'s neutral face ({kind.lower()}); choose a sample to go back to "
                    f"the {TITLE_TRUTH.lower()}.")

    # ---- display -------------------------------------------------------------------------------
    @Slot(object)
    def set_style(self, style: DisplayStyle) -> None:
        heat_changed = (style.heatmap, style.displacement) != (self.style_.heatmap, self.style_.displacement)
        self.style_ = style
        self.settings.save_display_style(style)
        if heat_changed:
            self._refresh_views()
        else:
            self.viewer.set_style(style)
        if self.controls.style() != style:
            self.controls.set_style(style)

    # ---- export --------------------------------------------------------------------------------
    def export_figure(self, path: str | Path, scale: float = 1.0, transparent: bool = False,
                      keys: tuple[str, ...] = KEYS, text: str = "dark") -> tuple[int, int]:
        """Render the views as they are (camera, colours, titles, colour bar) into one PNG;
        ``text`` is the text colour on a transparent background ("dark" or "light")."""
        request = self.viewer.figure_request(tuple(keys))
        size = render_views_figure(request, path, scale=scale, transparent=transparent, text=text)
        self.status(f"Wrote {path} ({size[0]} x {size[1]} pixels).")
        return size

    def export_mesh(self, path: str | Path) -> Path:
        return self.state.export_mesh(path)

    def export_stats(self, path: str | Path) -> Path:
        return self.state.export_stats(path)

    # ---- drag and drop -------------------------------------------------------------------------
    @staticmethod
    def _local_paths(mime: QMimeData) -> list[str]:
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self._local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if self._local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = self._local_paths(event.mimeData())
        if not paths:
            return
        event.acceptProposedAction()
        self.drop_paths(paths, self._view_at(event.position().toPoint()))

    def _view_at(self, point) -> str | None:
        for key, view in self.viewer.views.items():
            local = view.widget.mapFrom(self, point)
            if view.widget.rect().contains(local):
                return key
        return None

    def drop_paths(self, paths: list[str], view: str | None = None) -> None:
        """Open dropped files: checkpoints and datasets first, then meshes (on the right view, or a
        second mesh, as the ground truth)."""
        try:
            kinds = files.opening_order(paths)
        except FacelabError as error:
            self.error("Cannot open", str(error))
            return
        meshes_opened = 0
        for kind, path in kinds:
            if kind != files.MESH:
                self.open_path(path)
            elif view == "truth" or meshes_opened == 1:
                self.open_ground_truth(path)
                meshes_opened += 1
            elif self.open_mesh(path):
                meshes_opened += 1

    # ---- life ----------------------------------------------------------------------------------
    def _update_title(self) -> None:
        # The app sets no application display name, which Qt would append to this (a second "facelab").
        self.setWindowTitle(WINDOW_TITLE)

    def start(self, data: str | None = "synth", checkpoint: str | None = None, input_mesh: str | None = None,
              ground_truth: str | None = None, data_options: dict | None = None,
              reading: StartReading | None = None) -> None:
        """What ``facelab gui`` opens: the data, then the model (bundled by default), read in a
        thread of their own while the window shows (``reading``, begun by
        :func:`~facelab.app.launch.open_main_window` before the window was built, or here), then the
        meshes asked for. The data's first sample shows as soon as the data arrive, its prediction
        when the model does (:class:`~facelab.app._qt_window_start.WindowStart`). ``started`` is
        emitted once all of it is open or has said why not."""
        self._start.begin(data, checkpoint, input_mesh, ground_truth, data_options, reading)

    def wait_for_tasks(self) -> None:
        self._pool.waitForDone()                # the loads under way and those queued behind them
        self._start.wait()

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self._closed:
            self._closed = True
            self.training.shutdown()            # stops a run after its current step and waits
            self.predictions.clear()
            self._pool.clear()                  # work queued but not begun is not needed any more
            self.wait_for_tasks()
            self.settings.save_window(self.saveGeometry(), self.saveState())
            if self.entry is not None and self.dataset_source is not None:
                options = json.dumps(self.dataset_options, sort_keys=True)
                self.settings.save_selection(Selection(self.dataset_source, options, self.entry.index,
                                                       self.entry.label, self.browser.current_part))
            self.settings.sync()
            self.viewer.close_views()
        super().closeEvent(event)
