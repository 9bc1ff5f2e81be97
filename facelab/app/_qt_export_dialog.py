"""The figure export dialog: which views, at what scale of the window, on what background, and
with what text colour (a transparent figure goes on slides of any colour)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QWidget,
)

from facelab.app._qt_viewer import KEYS
from facelab.app.export import TEXT_COLOURS

CHOICES = {"All three views": KEYS, "Input": ("input",), "Predicted neutral": ("predicted",),
           "Ground-truth neutral": ("truth",)}
TEXT_LABELS = {"dark": "Dark, for light slides", "light": "Light, for dark slides"}


@dataclass
class FigureOptions:
    keys: tuple[str, ...] = KEYS
    scale: float = 2.0
    transparent: bool = False
    text: str = "dark"             # the text colour on a transparent background


class ExportFigureDialog(QDialog):
    def __init__(self, sizes: dict[str, tuple[int, int]], options: FigureOptions | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export figure")
        self.sizes = sizes
        options = options or FigureOptions()
        form = QFormLayout(self)
        self.which = QComboBox()
        for label, keys in CHOICES.items():
            self.which.addItem(label, keys)
        self.which.setCurrentIndex(list(CHOICES.values()).index(options.keys) if options.keys in CHOICES.values() else 0)
        self.scale = QDoubleSpinBox()
        self.scale.setRange(1.0, 4.0)
        self.scale.setSingleStep(0.5)
        self.scale.setDecimals(1)
        self.scale.setSuffix(" x")
        self.scale.setValue(options.scale)
        self.transparent = QCheckBox("transparent background")
        self.transparent.setChecked(options.transparent)
        self.text = QComboBox()
        for key in TEXT_COLOURS:
            self.text.addItem(TEXT_LABELS[key], key)
        self.text.setCurrentIndex(max(0, self.text.findData(options.text)))
        self.text.setToolTip("On a transparent background the figure's text takes the slide's colour: dark "
                             "text for a light slide, light text for a dark one (on white it is dark)")
        self.size_label = QLabel()
        form.addRow("Views", self.which)
        form.addRow("Scale of the window", self.scale)
        form.addRow("", self.transparent)
        form.addRow("Text", self.text)
        form.addRow("Image size", self.size_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.which.currentIndexChanged.connect(self._update_size)
        self.scale.valueChanged.connect(self._update_size)
        self.transparent.toggled.connect(self.text.setEnabled)
        self.text.setEnabled(self.transparent.isChecked())
        self._update_size()

    def options(self) -> FigureOptions:
        return FigureOptions(tuple(self.which.currentData()), float(self.scale.value()), self.transparent.isChecked(),
                             str(self.text.currentData()))

    def _update_size(self) -> None:
        options = self.options()
        width = sum(round(self.sizes[k][0] * options.scale) for k in options.keys)
        height = round(self.sizes[options.keys[0]][1] * options.scale)
        self.size_label.setText(f"{width} x {height} pixels")
