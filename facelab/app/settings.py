"""Settings remembered between sessions (QSettings, INI format, organisation and app "facelab").

Last folders per kind of file, recent files, the display style (colormap, colour range mode and
value), the window's geometry and dock layout, and the dataset sample on show (restored when the
same dataset opens again). ``FACELAB_SETTINGS_DIR`` (or
:func:`use_settings_dir`, which tests call with a temporary folder) moves the file elsewhere, so
tests never touch the user's settings.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from facelab.app.files import RecentFile, add_recent, recent_from_json, recent_to_json
from facelab.render import COLORMAPS, RANGE_MODES, DisplayStyle

ORGANISATION = "facelab"
APPLICATION = "facelab"
SETTINGS_DIR_ENV = "FACELAB_SETTINGS_DIR"


@dataclass(frozen=True)
class Selection:
    """The dataset sample on show: which dataset (source and options), which mesh, which part listed."""

    source: str
    options: str          # the dataset's options as sorted JSON
    index: int
    label: str
    part: str | None      # the browser's part of the split ("test", "train", None: all subjects)

    def matches(self, source: str | None, options: dict) -> bool:
        return source == self.source and json.dumps(options, sort_keys=True) == self.options


def use_settings_dir(folder: str | Path) -> None:
    """Keep the settings file in ``folder`` (for tests and portable set-ups)."""
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))


class AppSettings:
    def __init__(self) -> None:
        folder = os.environ.get(SETTINGS_DIR_ENV)
        if folder:
            use_settings_dir(folder)
        self.qsettings = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION)

    @property
    def path(self) -> str:
        return self.qsettings.fileName()

    def sync(self) -> None:
        self.qsettings.sync()

    # ---- folders and recent files ------------------------------------------------------------
    def last_folder(self, kind: str) -> str:
        value = self.qsettings.value(f"folders/{kind}", "")
        return str(value) if value and Path(str(value)).is_dir() else str(Path.home())

    def remember_folder(self, kind: str, path: str | Path) -> None:
        path = Path(path)
        self.qsettings.setValue(f"folders/{kind}", str(path if path.is_dir() else path.parent))

    def recent(self) -> list[RecentFile]:
        return recent_from_json(self.qsettings.value("recent/files", "[]"))

    def add_recent(self, kind: str, path: str | Path) -> list[RecentFile]:
        recent = add_recent(self.recent(), kind, path)
        self.qsettings.setValue("recent/files", recent_to_json(recent))
        return recent

    def clear_recent(self) -> None:
        self.qsettings.setValue("recent/files", "[]")

    # ---- display -----------------------------------------------------------------------------
    def display_style(self) -> DisplayStyle:
        default = DisplayStyle()
        value = self.qsettings.value
        colormap = str(value("display/colormap", default.colormap))
        mode = str(value("display/range_mode", default.range_mode))
        try:
            fixed = float(value("display/fixed_max_mm", default.fixed_max_mm))
            percentile = float(value("display/percentile", default.percentile))
        except (TypeError, ValueError):
            fixed, percentile = default.fixed_max_mm, default.percentile
        return DisplayStyle(
            colormap=colormap if colormap in COLORMAPS else default.colormap,
            range_mode=mode if mode in RANGE_MODES else default.range_mode,
            fixed_max_mm=fixed if fixed > 0 else default.fixed_max_mm,
            percentile=percentile if 0 < percentile <= 100 else default.percentile,
            heatmap=_bool(value("display/heatmap", default.heatmap)),
            wireframe=False,
            displacement=_bool(value("display/displacement", default.displacement)),
        )

    def save_display_style(self, style: DisplayStyle) -> None:
        for key in ("colormap", "range_mode", "fixed_max_mm", "percentile", "heatmap", "displacement"):
            self.qsettings.setValue(f"display/{key}", getattr(style, key))

    # ---- window ------------------------------------------------------------------------------
    def window_geometry(self) -> QByteArray | None:
        value = self.qsettings.value("window/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def window_state(self) -> QByteArray | None:
        value = self.qsettings.value("window/state")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)

    # ---- the sample on show ------------------------------------------------------------------
    def selection(self) -> Selection | None:
        try:
            fields = json.loads(str(self.qsettings.value("selection/sample", "") or "null"))
            return Selection(**fields) if isinstance(fields, dict) else None
        except (TypeError, ValueError):
            return None

    def save_selection(self, selection: Selection) -> None:
        self.qsettings.setValue("selection/sample", json.dumps(asdict(selection)))

    # ---- training ----------------------------------------------------------------------------
    def value(self, key: str, default=None):
        return self.qsettings.value(key, default)



def _bool(value) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)
