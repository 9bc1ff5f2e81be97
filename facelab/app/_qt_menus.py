"""The main window's menu bar: File (open, recent, export), View and Help.

Each File entry asks its dialog, remembers the folder, and calls the window's public API
(``open_mesh``, ``open_dataset``, ``export_figure``...), which shows any error in a message box.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMessageBox

from facelab.app import files
from facelab.app._qt_checkpoint_dialog import ask_checkpoint
from facelab.app._qt_export_dialog import ExportFigureDialog, FigureOptions
from facelab.app._qt_viewer import KEYS
from facelab.app.export import file_stem
from facelab.errors import FacelabError
from facelab.mesh.io import MESH_SUFFIXES

MESH_FILTER = f"Meshes ({' '.join('*' + s for s in MESH_SUFFIXES)});;All files (*)"
MODEL_FILTER = "Morphable models (*.npz);;All files (*)"


class WindowMenus(QObject):
    """Builds ``window``'s menu bar and answers its entries.

    Args:
        window: facelab's ``MainWindow``, whose docks, viewer and browser exist already.
    """

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._figure_options = FigureOptions()   # the export dialog's last choices, for the next export
        self._build()

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self.window)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build(self) -> None:
        bar = self.window.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "Open &expressive mesh...", self._ask_mesh, QKeySequence.StandardKey.Open,
                     "An expressive face registered to the model's template")
        self._action(file_menu, "Open &ground-truth neutral...", self._ask_truth, "Ctrl+G",
                     "The true neutral face of the input, to measure the error")
        self._action(file_menu, "Open &dataset folder...", self._ask_dataset_folder, "Ctrl+D")
        self._action(file_menu, "Open &morphable-model file...", self._ask_model_file)
        self._action(file_menu, "Open &SynthFaces (built-in)", lambda: self.window.open_dataset("synth"))
        self._action(file_menu, "Open &checkpoint...", self._ask_checkpoint, "Ctrl+K",
                     "A checkpoint (.json/.safetensors, or its name without extension) or a run folder")
        self.open_bundled_action = self._action(file_menu, "Open &bundled model", self._ask_bundled_model,
                                                tip="Back to the model that comes with facelab")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        self.export_figure_action = self._action(file_menu, "Export &figure...", self._ask_export_figure, "Ctrl+E")
        self.export_mesh_action = self._action(file_menu, "Export predicted &mesh (PLY with error)...",
                                               self._ask_export_mesh)
        self.export_stats_action = self._action(file_menu, "Export error s&tatistics (CSV/JSON)...",
                                                self._ask_export_stats)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.window.close, QKeySequence.StandardKey.Quit)

        view_menu = bar.addMenu("&View")
        for preset, label in (("front", "&Front view"), ("side", "&Side view"), ("three-quarter", "&Three-quarter view")):
            self._action(view_menu, label, lambda _c=False, p=preset: self.window.viewer.reset_view(p))
        view_menu.addSeparator()
        self._action(view_menu, "&Next sample", lambda: self.window.browser.step(+1), "PgDown")
        self._action(view_menu, "&Previous sample", lambda: self.window.browser.step(-1), "PgUp")
        view_menu.addSeparator()
        for dock in (self.window.browser_dock, self.window.identity_dock, self.window.training_dock):
            view_menu.addAction(dock.toggleViewAction())

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&About facelab", self._about)

    def _ask_bundled_model(self) -> None:
        self.window.open_bundled_model(interactive=True)

    def _save_name(self, title: str, kind: str, default_name: str, filters: str) -> str | None:
        folder = self.window.settings.last_folder(kind)
        name, _ = QFileDialog.getSaveFileName(self.window, title, str(Path(folder) / default_name), filters)
        if name:
            self.window.settings.remember_folder(kind, name)
        return name or None

    def _default_stem(self) -> str:
        return file_stem(self.window.sample.label if self.window.sample is not None else "facelab")

    def _ask_export_figure(self) -> None:
        views = self.window.viewer.views
        sizes = {key: (views[key].widget.width(), views[key].widget.height()) for key in KEYS}
        dialog = ExportFigureDialog(sizes, self._figure_options, self.window)
        if dialog.exec() != ExportFigureDialog.DialogCode.Accepted:
            return
        options = self._figure_options = dialog.options()
        name = self._save_name("Export figure", "export", f"{self._default_stem()}.png", "PNG images (*.png)")
        if name:
            try:
                self.window.export_figure(name, options.scale, options.transparent, options.keys, options.text)
            except FacelabError as error:
                self.window.error("Cannot export figure", str(error))

    def _ask_export_mesh(self) -> None:
        self._ask_export("Export predicted mesh", "_neutral.ply",
                         "PLY with per-vertex error (*.ply);;OBJ (*.obj);;OFF (*.off)", self.window.export_mesh, "mesh")

    def _ask_export_stats(self) -> None:
        self._ask_export("Export error statistics", "_error.json", "JSON (*.json);;CSV (*.csv)",
                         self.window.export_stats, "statistics")

    def _ask_export(self, title: str, suffix: str, filters: str, export, what: str) -> None:
        """Ask for a file name, then ``export(name)``; a user error is a message box."""
        name = self._save_name(title, "export", f"{self._default_stem()}{suffix}", filters)
        if name:
            try:
                export(name)
                self.window.status(f"Wrote {name}.")
            except FacelabError as error:
                self.window.error(f"Cannot export {what}", str(error))

    # ---- file dialogs --------------------------------------------------------------------------
    def _ask_open(self, title: str, kind: str, filters: str) -> str | None:
        name, _ = QFileDialog.getOpenFileName(self.window, title, self.window.settings.last_folder(kind), filters)
        return name or None

    def _ask_mesh(self) -> None:
        name = self._ask_open("Open expressive mesh", files.MESH, MESH_FILTER)
        if name:
            self.window.open_mesh(name)

    def _ask_truth(self) -> None:
        name = self._ask_open("Open ground-truth neutral", files.MESH, MESH_FILTER)
        if name:
            self.window.open_ground_truth(name)

    def _ask_dataset_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open dataset folder",
                                                  self.window.settings.last_folder(files.DATASET))
        if folder:
            self.window.open_dataset(folder)

    def _ask_model_file(self) -> None:
        name = self._ask_open("Open morphable-model file", files.DATASET, MODEL_FILTER)
        if name:
            self.window.open_dataset(name)

    def _ask_checkpoint(self) -> None:
        path = ask_checkpoint(self.window, self.window.settings.last_folder(files.CHECKPOINT))
        if path is not None:
            self.window.open_checkpoint(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.window.settings.recent()
        if not recent:
            action = self.recent_menu.addAction("(none)")
            action.setEnabled(False)
            return
        for item in recent:
            action = self.recent_menu.addAction(item.label)
            action.setToolTip(item.path)
            action.setStatusTip(item.path)
            action.triggered.connect(lambda _c=False, r=item: self._open_recent(r))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear", self.window.settings.clear_recent)

    def _open_recent(self, item: files.RecentFile) -> None:
        if item.kind == files.DATASET:
            self.window.open_dataset(item.path)
        elif item.kind == files.CHECKPOINT:
            self.window.open_checkpoint(item.path)
        elif item.kind == files.TRUTH:
            self.window.open_ground_truth(item.path)
        else:
            self.window.open_mesh(item.path)

    def _about(self) -> None:
        from facelab import __version__

        QMessageBox.about(self.window, "About facelab",
                          f"facelab {__version__}\n\nNeutralise facial expressions on registered 3D face meshes "
                          "and recognise identity.\nSettings: " + self.window.settings.path)
