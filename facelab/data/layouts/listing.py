"""Listing helpers shared by the folder layouts: natural sorting and unpaired-mesh warnings.

Every list of folders and files is sorted naturally, so a dataset's record order (and so its
split) never depends on the file system's order.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path

from facelab.data.dataset import FaceDataset
from facelab.mesh.io import MESH_SUFFIXES

log = logging.getLogger(__name__)


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``shape_2`` < ``shape_10``, ``Tester_9`` < ``Tester_10``.

    Ties (``a01`` / ``a1``) are broken by the text itself, so the order is total and deterministic.
    """
    return tuple(
        (0, int(part), part) if part.isdigit() else (1, part.lower(), part)
        for part in re.split(r"(\d+)", text)
    )


def sorted_subfolders(folder: Path) -> list[Path]:
    """The visible sub-folders of ``folder`` in natural order (hidden ``.*`` ones are skipped)."""
    try:
        entries = [Path(entry.path) for entry in os.scandir(folder)
                   if entry.is_dir() and not entry.name.startswith(".")]
    except OSError:
        return []
    return sorted(entries, key=lambda path: natural_key(path.name))


def sorted_mesh_files(folder: Path) -> list[Path]:
    """The visible mesh files directly in ``folder`` in natural order.

    Hidden files are skipped: they include the temporary files of interrupted atomic writes.
    """
    try:
        entries = [Path(entry.path) for entry in os.scandir(folder)
                   if entry.is_file() and not entry.name.startswith(".")
                   and Path(entry.name).suffix.lower() in MESH_SUFFIXES]
    except OSError:
        return []
    return sorted(entries, key=lambda path: natural_key(path.name))


def note_unpaired(dataset: FaceDataset, scan_warnings: list[str] | tuple[str, ...] = ()) -> FaceDataset:
    """Add (and log) the layout scan's warnings, then one per (subject, group) whose expressive
    meshes have no neutral to pair with.

    Such meshes stay in the dataset (they count in statistics) but are in no pair.
    """
    for message in scan_warnings:
        dataset.warnings.append(message)
        log.warning(message)
    paired = {pair.expressive for pair in dataset.pairs}
    unpaired = Counter(
        (record.subject, record.group)
        for index, record in enumerate(dataset.records)
        if not record.is_neutral and index not in paired
    )
    for (subject, group), count in sorted(unpaired.items(), key=lambda item: (natural_key(item[0][0]), item[0][1])):
        where = f"subject {subject}" + (f", sequence {group}" if group else "")
        message = f"{count} expressive mesh(es) of {where} have no neutral mesh and are left out of the pairs."
        dataset.warnings.append(message)
        log.warning(message)
    return dataset
