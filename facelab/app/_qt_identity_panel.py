"""The identity panel: the rank-k gallery matches of the current probe (cosine similarity of
identity embeddings), clickable to show that subject's neutral face, then the recognizer's five
closest training subjects (it knows no others: for an unseen face they are no answer), clickable
too."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from facelab.app.identity import Match, TrueRank

TOP5_TITLE = "<b>Closest training subjects</b> (the recognizer knows no others)"
GALLERY_TITLE = "<b>Gallery matches</b>"
SPREAD_ROLE = Qt.ItemDataRole.UserRole + 1
COSINE_COLUMN, MARGIN_COLUMN = 2, 3
SPREAD_COLOUR = QColor(40, 140, 100)
#: After the probe's true subject in the gallery table: short, so that the name never wraps in a narrow dock.
TRUE_MARK = " \u2713"


class SpreadBar(QStyledItemDelegate):
    """Draws a cell's spread (0 to 1, ``SPREAD_ROLE``) as a thin bar under its text: where the
    cosine lies between the gallery's lowest and highest, so the true match stands out of a
    narrow range (a thin bar, unlike a selection's fill)."""

    def paint(self, painter, option, index) -> None:
        super().paint(painter, option, index)
        spread = index.data(SPREAD_ROLE)
        if spread is not None:
            rect = option.rect.adjusted(2, 0, -2, -2)
            width = max(1, round(rect.width() * min(max(float(spread), 0.0), 1.0)))
            painter.fillRect(rect.left(), rect.bottom() - 3, width, 4, SPREAD_COLOUR)


def _table(headers: list[str], stretch: int) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    table.setWordWrap(False)
    table.setMinimumHeight(60)
    return table


def _cell(table: QTableWidget, row: int, column: int, text: str, number: bool = False,
          bold: bool = False) -> QTableWidgetItem:
    """The item at (row, column) showing ``text``, in bold or not. Items are reused, not replaced:
    each sample switch refills both tables, and a new item costs the view far more than a new text."""
    item = table.item(row, column)
    if item is None:
        item = QTableWidgetItem()
        if number:
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        table.setItem(row, column, item)
    item.setText(text)
    if item.font().bold() != bold:
        font = QFont()
        font.setBold(bold)
        item.setFont(font)
    return item


class IdentityPanel(QWidget):
    subject_clicked = Signal(str, int)           # a gallery subject, index of its neutral in the dataset
    training_subject_clicked = Signal(str)       # a closest training subject

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        # The gallery first: its subjects include the probe's own, so its answer can be right or wrong.
        self.gallery_label = QLabel(GALLERY_TITLE)
        self.gallery_label.setWordWrap(True)
        layout.addWidget(self.gallery_label)
        self.gallery = _table(["#", "Subject", "Cosine", "Margin"], stretch=1)
        self.gallery.setToolTip("Click a match to show that subject's neutral face in the right view")
        self.gallery.horizontalHeaderItem(0).setToolTip("Rank")
        self.gallery.horizontalHeaderItem(COSINE_COLUMN).setToolTip(
            "Cosine similarity to the probe; the bar: where it lies between the gallery's lowest cosine (none) "
            "and its highest (full)")
        self.gallery.horizontalHeaderItem(MARGIN_COLUMN).setToolTip(
            "How far the cosine lies above the next subject's: a true match stands out by its margin")
        self.gallery.setItemDelegateForColumn(COSINE_COLUMN, SpreadBar(self.gallery))
        layout.addWidget(self.gallery, 3)
        self.top5_label = QLabel(TOP5_TITLE)
        self.top5_label.setWordWrap(True)
        self.top5_label.setToolTip("The recognizer's softmax over the model's training subjects: for a face of "
                                   "anyone else these are the nearest of them, not who it is")
        layout.addWidget(self.top5_label)
        self.top5 = _table(["Subject", "Probability"], stretch=0)
        self.top5.setToolTip("Click a subject to show its neutral face in the right view")
        layout.addWidget(self.top5, 2)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self._matches: list[Match] = []
        self._top5: list[str] = []
        self._chosen_table: QTableWidget | None = None     # the table of the subject shown on the right
        self.gallery.cellClicked.connect(self._clicked)
        self.top5.cellClicked.connect(self._top5_clicked)

    def clear(self, note: str = "") -> None:
        self.top5.setRowCount(0)
        self.gallery.setRowCount(0)
        self._matches, self._top5, self._chosen_table = [], [], None
        self.gallery_label.setText(GALLERY_TITLE)      # no subject or gallery of a sample no longer shown
        self.top5_label.setText(TOP5_TITLE)
        self.note.setText(note)

    def show_identity(self, top5: list[tuple[str, float]], matches: list[Match], rank: TrueRank | int | None,
                      true_subject: str | None, gallery_size: int, note: str = "", chosen: str | None = None) -> None:
        """``rank``: where the true subject stands in the same ranked list as ``matches``;
        ``chosen``: the subject whose neutral the right view shows (its row stays selected), else none."""
        self._top5 = [subject for subject, _probability in top5]
        self.top5.setRowCount(len(top5))
        for row, (subject, probability) in enumerate(top5):
            _cell(self.top5, row, 0, subject)
            _cell(self.top5, row, 1, f"{probability:.3f}", number=True)
        self._matches = list(matches)
        gallery = self.gallery
        gallery.setRowCount(len(matches))
        for row, match in enumerate(matches):
            is_true = match.subject == true_subject
            _cell(gallery, row, 0, str(match.rank), number=True, bold=is_true)
            name = _cell(gallery, row, 1, match.subject + (TRUE_MARK if is_true else ""), bold=is_true)
            name.setToolTip(f"{match.subject} is the probe's true subject" if is_true else "")
            cosine = _cell(gallery, row, COSINE_COLUMN, f"{match.score:.4f}", number=True, bold=is_true)
            cosine.setData(SPREAD_ROLE, float(match.spread))
            _cell(gallery, row, MARGIN_COLUMN, "" if match.margin is None else f"+{match.margin:.4f}", number=True,
                  bold=is_true)
        where = ""
        if rank is not None and true_subject:
            where = f"true subject {true_subject} at " + (rank.sentence if isinstance(rank, TrueRank)
                                                          else f"rank {rank}")
        if gallery_size:
            self.gallery_label.setText(f"{GALLERY_TITLE} ({gallery_size} subjects' neutral faces"
                                       f"{'; ' + where if where else ''})")
        else:
            self.gallery_label.setText(GALLERY_TITLE)
        self.top5_label.setText(TOP5_TITLE)
        self.note.setText(note)
        self._select(chosen)

    def _select(self, chosen: str | None) -> None:
        """Select ``chosen``'s row in the table it was picked from, and nothing else (a row picked
        for another sample does not stay highlighted)."""
        for table in (self.gallery, self.top5):
            table.clearSelection()
            table.setCurrentCell(-1, -1)
        table = self._chosen_table if chosen is not None else None
        names = ([m.subject for m in self._matches] if table is self.gallery else self._top5) if table else []
        if chosen in names:
            table.selectRow(names.index(chosen))
        else:
            self._chosen_table = None

    def _clicked(self, row: int, _column: int) -> None:
        if 0 <= row < len(self._matches):
            match = self._matches[row]
            self._chosen_table = self.gallery
            self.top5.clearSelection()
            self.subject_clicked.emit(match.subject, match.index)

    def _top5_clicked(self, row: int, _column: int) -> None:
        if 0 <= row < len(self._top5):
            self._chosen_table = self.top5
            self.gallery.clearSelection()
            self.training_subject_clicked.emit(self._top5[row])
