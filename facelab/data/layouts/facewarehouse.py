"""FaceWarehouse: ``<root>/Tester_<k>/Blendshape/shape_<j>.obj``.

150 subjects (``Tester_1`` ... ``Tester_150``), each with ``shape_0`` (the neutral) and
``shape_1`` ... ``shape_46`` (expressions), 11,510 vertices in quads (split into triangles on
reading). Other folders of a tester (``TrainingPose``) and ``shape.bs`` are ignored.

The dataset's documentation gives no unit. By default the unit is found from the size of the
first readable neutral: coordinates are multiplied by the power of ten that brings its largest
extent closest to a human head's (~200 mm); pass ``unit_scale`` to fix it instead.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path

import numpy as np

from facelab.data.dataset import NEUTRAL, FaceDataset, MeshRecord
from facelab.data.layouts.listing import natural_key, note_unpaired, sorted_subfolders
from facelab.data.vertex_cache import load_mesh_files
from facelab.errors import DatasetError, MeshError
from facelab.mesh.io import read_mesh

log = logging.getLogger(__name__)

NAME = "facewarehouse"
DESCRIPTION = "facewarehouse: <root>/Tester_<k>/Blendshape/shape_<j>.obj (FaceWarehouse; shape_0 is the neutral)"

TESTER_FOLDER = re.compile(r"^Tester_(\d+)$", re.IGNORECASE)
SHAPE_FILE = re.compile(r"^shape_(\d+)\.obj$", re.IGNORECASE)
BLENDSHAPE_FOLDER = "Blendshape"

#: The largest extent of a head-sized mesh in millimetres, used to guess the unit.
HEAD_SIZE_MM = 200.0
#: Tester folders that ``detect`` looks into.
DETECT_LIMIT = 5


def _tester_folders(root: Path) -> list[Path]:
    return [folder for folder in sorted_subfolders(root) if TESTER_FOLDER.match(folder.name)]


def _shape_files(tester: Path) -> list[tuple[int, Path]]:
    """(shape number, path) of a tester's blend shapes, by number."""
    shapes = []
    try:
        for entry in os.scandir(tester / BLENDSHAPE_FOLDER):
            match = SHAPE_FILE.match(entry.name)
            if match and entry.is_file():
                shapes.append((int(match[1]), Path(entry.path)))
    except OSError:
        return []
    return sorted(shapes, key=lambda item: (item[0], natural_key(item[1].name)))


def detect(path: Path) -> bool:
    """A folder with ``Tester_<k>/Blendshape/shape_<j>.obj`` in one of its first tester folders."""
    path = Path(path)
    if not path.is_dir():
        return False
    for tester in _tester_folders(path)[:DETECT_LIMIT]:
        try:
            with os.scandir(tester / BLENDSHAPE_FOLDER) as entries:
                if any(SHAPE_FILE.match(entry.name) for entry in entries):
                    return True
        except OSError:
            continue
    return False


def records_of(root: Path) -> list[MeshRecord]:
    """One record per blend shape, testers and shapes in numeric order; ``shape_0`` is neutral."""
    return [
        MeshRecord(tester.name, NEUTRAL if number == 0 else f"shape_{number}", path)
        for tester in _tester_folders(root)
        for number, path in _shape_files(tester)
    ]


def guess_unit_scale(paths: list[Path], head_size_mm: float = HEAD_SIZE_MM) -> float:
    """The power of ten that turns the first readable mesh of ``paths`` into millimetres.

    A head's largest extent is ~200 mm; the scale is ``10 ** round(log10(200 / extent))``, so
    extents from ~63 to ~630 units read as mm, ~0.63 to ~6.3 as decimetres (x100), and so on.
    Returns 1.0 when no mesh can be read (loading will then report the broken files).
    """
    for path in paths:
        try:
            vertices = read_mesh(path).vertices
        except MeshError:
            continue
        extent = float(np.ptp(vertices, axis=0).max())
        if extent > 0:
            return float(10.0 ** round(math.log10(head_size_mm / extent)))
    return 1.0


def load(path: Path, progress: bool = True, unit_scale: float | str = "auto") -> FaceDataset:
    """Load FaceWarehouse's blend shapes as neutral/expressive pairs per tester.

    Args:
        unit_scale: multiplies file coordinates to get millimetres, or ``"auto"`` to guess it
            from the size of a neutral mesh (see :func:`guess_unit_scale`).

    Returns:
        Up to 150 subjects x 47 meshes (``neutral``, ``shape_1`` ... ``shape_46``), in mm.
    """
    root = Path(path)
    records = records_of(root)
    if not records:
        raise DatasetError(f"{root} holds no FaceWarehouse blend shapes: expected {DESCRIPTION.split(': ', 1)[1]}.")
    if unit_scale == "auto":
        neutral_first = [r.path for r in records if r.is_neutral] + [r.path for r in records if not r.is_neutral]
        unit_scale = guess_unit_scale(neutral_first[:5])
        log.info("FaceWarehouse coordinates are multiplied by %g to get millimetres (guessed from a mesh's size).", unit_scale)
    elif isinstance(unit_scale, bool) or not isinstance(unit_scale, (int, float)) or not unit_scale > 0:
        raise DatasetError(f"unit_scale must be a positive number or 'auto', got {unit_scale!r}.")
    dataset = load_mesh_files(records, name=f"FaceWarehouse at {root}", layout=NAME, root=root,
                              unit_scale=float(unit_scale), progress=progress)
    return note_unpaired(dataset)
