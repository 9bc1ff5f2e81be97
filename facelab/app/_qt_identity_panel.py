"""The identity panel: the rank-k gallery matches of the current probe (cosine similarity of
identity embeddings), clickable to show that subject's neutral face, then the recognizer's five
closest training subjects (it knows no others: for an unseen face they are no answer)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from facelab.app.identity import Match, TrueRank

TOP5_TITLE = "<b>Closest training subjects</b> (the recognizer knows no others)"
GALLERY_TITLE = "<b>Gallery matches</b>"


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(len(headers) - 2 if len(headers) > 2 else 0, QHeaderView.ResizeMode.Stretch)
    table.setMinimumHeight(60)
    return table


class IdentityPanel(QWidget):
    subject_clicked = Signal(str, int)   # subject, index of its neutral in the dataset

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        # The gallery first: its subjects include the probe's own, so its answer can be right or wrong.
        self.gallery_label = QLabel(GALLERY_TITLE)
        self.gallery_label.setWordWrap(True)
        layout.addWidget(self.gallery_label)
        self.gallery = _table(["Rank", "Subject", "Cosine"])
        self.gallery.setToolTip("Click a match to show that subject's neutral face in the right view")
        layout.addWidget(self.gallery, 3)
        self.top5_label = QLabel(TOP5_TITLE)
        self.top5_label.setWordWrap(True)
        self.top5_label.setToolTip("The recognizer's softmax over the model's training subjects: for a face of "
                                   "anyone else these are the nearest of them, not who it is")
        layout.addWidget(self.top5_label)
        self.top5 = _table(["Subject", "Probability"])
        self.top5.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.top5, 2)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self._matches: list[Match] = []
        self.gallery.cellClicked.connect(self._clicked)

    def clear(self, note: str = "") -> None:
        self.top5.setRowCount(0)
        self.gallery.setRowCount(0)
        self._matches = []
        self.gallery_label.setText(GALLERY_TITLE)      # no subject or gallery of a sample no longer shown
        self.top5_label.setText(TOP5_TITLE)
        self.note.setText(note)

    def show_identity(self, top5: list[tuple[str, float]], matches: list[Match], rank: TrueRank | int | None,
                      true_subject: str | None, gallery_size: int, note: str = "") -> None:
        """``rank``: where the true subject stands in the same ranked list as ``matches``."""
        bold = QFont()
        bold.setBold(True)
        self.top5.setRowCount(len(top5))
        for row, (subject, probability) in enumerate(top5):
            self.top5.setItem(row, 0, QTableWidgetItem(subject))
            item = QTableWidgetItem(f"{probability:.3f}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.top5.setItem(row, 1, item)
        self._matches = list(matches)
        self.gallery.setRowCount(len(matches))
        for row, match in enumerate(matches):
            cells = [str(match.rank), match.subject + ("  (true)" if match.subject == true_subject else ""),
                     f"{match.score:.3f}"]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column != 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if match.subject == true_subject:
                    item.setFont(bold)
                self.gallery.setItem(row, column, item)
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

    def _clicked(self, row: int, _column: int) -> None:
        if 0 <= row < len(self._matches):
            match = self._matches[row]
            self.subject_clicked.emit(match.subject, match.index)
