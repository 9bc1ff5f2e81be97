"""File > Open checkpoint: a file dialog that takes a checkpoint as ``facelab`` commands do.

A checkpoint is two files, ``NAME.json`` and ``NAME.safetensors``; the CLI also takes ``NAME``
without its extension (``runs/x/best``) and a run folder (``runs/x``: its best, else its last). A
plain open-file dialog refuses both (the first is no file, the second a folder it walks into), so
this one accepts them: typed in the name box, or a run folder selected (or open: the name box then
offers its ``best``) when Open is pressed. Double-clicking a folder still walks into it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QLineEdit, QWidget

from facelab.app.files import checkpoint_target

CHECKPOINT_FILTER = "facelab checkpoints (*.json *.safetensors);;All files (*)"


class CheckpointDialog(QFileDialog):
    def __init__(self, parent: QWidget | None = None, folder: str = "") -> None:
        super().__init__(parent, "Open checkpoint", folder, CHECKPOINT_FILTER)
        self.setObjectName("checkpoint-dialog")
        # Qt's own dialog (a platform dialog would not ask accept() about a folder or a bare name).
        self.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        self.setFileMode(QFileDialog.FileMode.AnyFile)
        self.setLabelText(QFileDialog.DialogLabel.FileName, "Checkpoint:")
        self.setLabelText(QFileDialog.DialogLabel.Accept, "Open")
        self.setToolTip("A checkpoint's .json or .safetensors, its name without extension (runs/x/best), "
                        "or a run folder (runs/x: its best checkpoint)")
        self.chosen: Path | None = None
        # In a run folder the name box offers its checkpoint ("best", else "last"): Open is ready.
        self._offered: str | None = None
        self.directoryEntered.connect(self._offer_run_checkpoint)
        self._offer_run_checkpoint(self.directory().absolutePath())

    def _offer_run_checkpoint(self, folder: str) -> None:
        edit = self.findChild(QLineEdit, "fileNameEdit")
        if edit is None:
            return
        if self._offered is not None and edit.text().strip() == self._offered:
            edit.clear()                       # the last folder's offer does not follow into another
        self._offered = None
        if edit.text().strip() or checkpoint_target(folder) is None:
            return
        name = next(n for n in ("best", "last") if checkpoint_target(Path(folder) / n) is not None)
        edit.setText(name)
        edit.selectAll()
        self._offered = name

    def _named(self) -> Path | None:
        """What the user named: the name box's text (against the folder on show), else the selection,
        else the folder on show (Qt's own list may hold the folders a typed path went through)."""
        edit = self.findChild(QLineEdit, "fileNameEdit")
        typed = edit.text().strip().strip('"') if edit is not None else ""
        if typed:
            path = Path(typed).expanduser()
            return path if path.is_absolute() else Path(self.directory().absolutePath()) / path
        selected = self.selectedFiles()
        return Path(selected[0]) if selected else None

    def accept(self) -> None:
        named = self._named()
        if named is not None:
            target = checkpoint_target(named)
            if target is not None:
                self.chosen = target
                self.done(QFileDialog.DialogCode.Accepted)
                return
            if not named.is_dir():
                # Not a checkpoint: the window's open_checkpoint says why in its message box.
                self.chosen = named
                self.done(QFileDialog.DialogCode.Accepted)
                return
        super().accept()                       # a folder that is no run: walk into it


def ask_checkpoint(parent: QWidget | None, folder: str) -> Path | None:
    """The checkpoint the user chose (a ``.json``, a name without extension or a run folder), or None."""
    dialog = CheckpointDialog(parent, folder)
    try:
        if dialog.exec() == QFileDialog.DialogCode.Accepted and dialog.chosen is not None:
            return dialog.chosen
        return None
    finally:
        dialog.deleteLater()
