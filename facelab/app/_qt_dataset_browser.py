"""The dataset browser (a dock): subjects and their expressions, with the split each belongs to.

Arrow keys step through the list; choosing a subject row shows its first expression.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from facelab.app.session import TEST, TRAIN, Entry

PARTS = {"Test split": TEST, "Training split": TRAIN, "All subjects": None}
ROLE = Qt.ItemDataRole.UserRole


class DatasetBrowser(QWidget):
    entry_selected = Signal(object)   # Entry
    part_changed = Signal(object)     # "train", "test" or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._entries: list[Entry] = []
        self._items: dict[int, QTreeWidgetItem] = {}
        self._silent = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel("No dataset open")
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        row = QHBoxLayout()
        self.part = QComboBox()
        self.part.addItems(list(PARTS))
        self.part.setToolTip("Which subjects to list: the unseen test subjects, the training subjects, or all")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter")
        self.filter.setClearButtonEnabled(True)
        row.addWidget(self.part)
        row.addWidget(self.filter, 1)
        layout.addLayout(row)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Subject / expression", "Split"])
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, self.tree.header().ResizeMode.Stretch)
        # The split column holds one of a few words: a fixed width, measured once, spares the tree a
        # pass over every row whenever it is filled (ResizeToContents: 0.12 s for 1,080 rows).
        self.tree.header().setSectionResizeMode(1, self.tree.header().ResizeMode.Fixed)
        metrics = self.tree.fontMetrics()
        self.tree.header().resizeSection(1, max(metrics.horizontalAdvance(word) for word in ("Split", TRAIN, TEST))
                                         + 3 * metrics.averageCharWidth())
        layout.addWidget(self.tree, 1)
        self.count = QLabel("")
        layout.addWidget(self.count)
        self.tree.currentItemChanged.connect(self._current_changed)
        self.part.currentTextChanged.connect(self._part_changed)
        self.filter.textChanged.connect(self._apply_filter)

    # ---- contents --------------------------------------------------------------------------
    @property
    def current_part(self) -> str | None:
        return PARTS[self.part.currentText()]

    def set_part(self, part: str | None) -> None:
        for label, value in PARTS.items():
            if value == part:
                self.part.setCurrentText(label)

    def set_dataset(self, title: str, entries: list[Entry]) -> None:
        self.title.setText(title)
        self._entries = list(entries)
        self._rebuild()

    def clear(self) -> None:
        self.set_dataset("No dataset open", [])

    def _rebuild(self) -> None:
        self._silent = True
        try:
            self.tree.clear()
            self._items.clear()
            part = self.current_part
            subjects: dict[str, QTreeWidgetItem] = {}
            shown = 0
            for entry in self._entries:
                if part is not None and entry.part and entry.part != part:
                    continue
                parent = subjects.get(entry.subject)
                if parent is None:
                    parent = QTreeWidgetItem([entry.subject, entry.part])
                    parent.setFlags(parent.flags() | Qt.ItemFlag.ItemIsSelectable)
                    subjects[entry.subject] = parent
                    self.tree.addTopLevelItem(parent)
                child = QTreeWidgetItem([entry.expression, entry.part])
                child.setData(0, ROLE, entry)
                if entry.neutral is None:
                    child.setToolTip(0, "no ground-truth neutral in the dataset")
                    child.setForeground(0, self.palette().placeholderText())
                parent.addChild(child)
                self._items[entry.index] = child
                shown += 1
            self.tree.expandAll()
            self.count.setText(f"{len(subjects)} subjects, {shown} expressive meshes")
        finally:
            self._silent = False
        self._apply_filter(self.filter.text())

    def _part_changed(self) -> None:
        current = self.current_entry()
        self._rebuild()
        self.part_changed.emit(self.current_part)
        if current is not None and current.index in self._items:
            self.select_index(current.index, emit=False)

    def _apply_filter(self, text: str) -> None:
        text = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            parent = self.tree.topLevelItem(i)
            subject_match = not text or text in parent.text(0).lower()
            visible_children = 0
            for j in range(parent.childCount()):
                child = parent.child(j)
                visible = subject_match or text in child.text(0).lower()
                child.setHidden(not visible)
                visible_children += visible
            parent.setHidden(visible_children == 0)

    # ---- selection -------------------------------------------------------------------------
    def current_entry(self) -> Entry | None:
        item = self.tree.currentItem()
        if item is None:
            return None
        entry = item.data(0, ROLE)
        if entry is None and item.childCount():
            entry = item.child(0).data(0, ROLE)
        return entry

    def select_index(self, index: int, emit: bool = True) -> bool:
        """Make the entry of dataset mesh ``index`` current (emitting ``entry_selected`` if asked)."""
        item = self._items.get(index)
        if item is None:
            return False
        self._silent = not emit
        try:
            self.tree.setCurrentItem(item)
            self.tree.scrollToItem(item)
        finally:
            self._silent = False
        return True

    def visible_entries(self) -> list[Entry]:
        entries = []
        for i in range(self.tree.topLevelItemCount()):
            parent = self.tree.topLevelItem(i)
            for j in range(parent.childCount()):
                child = parent.child(j)
                if not child.isHidden() and not parent.isHidden():
                    entries.append(child.data(0, ROLE))
        return entries

    def step(self, delta: int) -> Entry | None:
        """Show the next (+1) or previous (-1) expression, across subjects."""
        entries = self.visible_entries()
        if not entries:
            return None
        current = self.current_entry()
        position = next((i for i, e in enumerate(entries) if current is not None and e.index == current.index), -1)
        target = entries[max(0, min(len(entries) - 1, position + delta))] if position >= 0 else entries[0]
        self.select_index(target.index)
        return target

    def _current_changed(self, current: QTreeWidgetItem | None, _previous) -> None:
        if self._silent or current is None:
            return
        entry = self.current_entry()
        if entry is not None:
            self.entry_selected.emit(entry)

    def focus_list(self) -> None:
        self.tree.setFocus()
