"""Colour and display controls: colormap, shared colour range (percentile or fixed), heatmap or
plain surface, input displacement, wireframe, and the camera presets."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QWidget

from facelab.render import COLORMAPS, VIEW_PRESETS, DisplayStyle

RANGE_LABELS = {"percentile": "Percentile of shown", "fixed": "Fixed range"}
VIEW_LABELS = {"front": "Front", "side": "Side", "three-quarter": "3/4"}


class DisplayControls(QWidget):
    style_changed = Signal(object)    # DisplayStyle
    view_requested = Signal(str)      # a key of VIEW_PRESETS

    def __init__(self, style: DisplayStyle | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._style = style or DisplayStyle()
        self._updating = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)

        self.heatmap = QCheckBox("Error heatmap")
        self.heatmap.setToolTip("Colour the prediction by its per-vertex error to the ground truth (mm); "
                                "off: plain shaded surfaces")
        self.displacement = QCheckBox("Input displacement")
        self.displacement.setToolTip("Colour the input by its expressive-to-neutral displacement (mm)")
        self.wireframe = QCheckBox("Wireframe")
        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.colormap.setToolTip("Colormap (perceptually uniform; cividis is colour-blind safe)")
        self.range_mode = QComboBox()
        for mode, label in RANGE_LABELS.items():
            self.range_mode.addItem(label, mode)
        self.range_mode.setToolTip("One colour range for every view: a percentile of the values shown, "
                                   "or fixed so figures of different samples compare")
        self.range_value = QDoubleSpinBox()
        self.range_value.setDecimals(1)
        self.range_value.setKeyboardTracking(False)
        self.range_value.setMinimumWidth(84)

        for widget in (self.heatmap, self.displacement, self.wireframe):
            layout.addWidget(widget)
        layout.addSpacing(8)
        layout.addWidget(QLabel("Colours"))
        layout.addWidget(self.colormap)
        layout.addWidget(self.range_mode)
        layout.addWidget(self.range_value)
        layout.addSpacing(8)
        layout.addWidget(QLabel("View"))
        self.view_buttons = {}
        for preset in VIEW_PRESETS:
            button = QPushButton(VIEW_LABELS.get(preset, preset))
            button.setToolTip(f"Reset the three linked cameras to the {preset} view")
            button.clicked.connect(lambda _checked=False, p=preset: self.view_requested.emit(p))
            layout.addWidget(button)
            self.view_buttons[preset] = button
        layout.addStretch(1)

        self.set_style(self._style)
        self.heatmap.toggled.connect(self._changed)
        self.displacement.toggled.connect(self._changed)
        self.wireframe.toggled.connect(self._changed)
        self.colormap.currentTextChanged.connect(self._changed)
        self.range_mode.currentIndexChanged.connect(self._mode_changed)
        self.range_value.valueChanged.connect(self._changed)

    def style(self) -> DisplayStyle:
        return self._style

    def set_style(self, style: DisplayStyle) -> None:
        self._updating = True
        try:
            self._style = style
            self.heatmap.setChecked(style.heatmap)
            self.displacement.setChecked(style.displacement)
            self.wireframe.setChecked(style.wireframe)
            self.colormap.setCurrentText(style.colormap)
            self.range_mode.setCurrentIndex(self.range_mode.findData(style.range_mode))
            self._configure_value(style)
        finally:
            self._updating = False

    def _configure_value(self, style: DisplayStyle) -> None:
        if style.range_mode == "fixed":
            self.range_value.setRange(0.1, 1000.0)
            self.range_value.setSingleStep(0.5)
            self.range_value.setSuffix(" mm")
            self.range_value.setPrefix("0 - ")
            self.range_value.setValue(style.fixed_max_mm)
            self.range_value.setToolTip("Top of the fixed colour range (mm)")
        else:
            self.range_value.setRange(50.0, 100.0)
            self.range_value.setSingleStep(0.5)
            self.range_value.setSuffix(" %")
            self.range_value.setPrefix("")
            self.range_value.setValue(style.percentile)
            self.range_value.setToolTip("The colour range ends at this percentile of the values shown")

    def _mode_changed(self) -> None:
        if self._updating:
            return
        mode = self.range_mode.currentData()
        self._updating = True
        try:
            self._configure_value(replace(self._style, range_mode=mode))
        finally:
            self._updating = False
        self._changed()

    def _changed(self, *_args) -> None:
        if self._updating:
            return
        mode = self.range_mode.currentData()
        value = self.range_value.value()
        self._style = replace(
            self._style, heatmap=self.heatmap.isChecked(), displacement=self.displacement.isChecked(),
            wireframe=self.wireframe.isChecked(), colormap=self.colormap.currentText(), range_mode=mode,
            **({"fixed_max_mm": value} if mode == "fixed" else {"percentile": value}),
        )
        self.style_changed.emit(self._style)
