"""CoMA: ``<root>/<subject>/<sequence>/<sequence>.<frame>.ply``, FLAME topology, metres.

Example: ``FaceTalk_170725_00137_TA/bareteeth/bareteeth.000001.ply``. CoMA has 12 subjects,
each performing 12 expression sequences of different lengths (20k+ frames in all), every frame
registered to the 5023-vertex FLAME template, coordinates in metres (read here as mm, x1000).

Pairing follows the paper (Sec. 4.1): in each (subject, sequence) the first frame, the one with
the lowest frame number, is the sequence's neutral; ``frames_per_sequence`` (12) expressive
frames are taken evenly from the remaining frames. Only these frames are read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from facelab.data.dataset import NEUTRAL, FaceDataset, MeshRecord
from facelab.data.layouts.generic import MANIFEST, METADATA
from facelab.data.layouts.listing import natural_key, note_unpaired, sorted_subfolders
from facelab.data.vertex_cache import load_mesh_files
from facelab.errors import DatasetError


NAME = "coma"
DESCRIPTION = "coma: <root>/<subject>/<sequence>/<sequence>.<frame>.ply (CoMA, FLAME topology, metres)"

UNIT_SCALE = 1000.0  # metres -> millimetres
FRAMES_PER_SEQUENCE = 12
FRAME_FILE = re.compile(r"^(?P<sequence>[^.].*)\.(?P<frame>\d+)\.ply$", re.IGNORECASE)

#: Subject folders and sequence folders per subject that ``detect`` looks into.
DETECT_LIMIT = 5


def _frame_files(sequence: Path) -> list[tuple[int, Path]]:
    """(frame number, path) of every frame file of a sequence folder, by frame number."""
    frames = []
    try:
        for entry in os.scandir(sequence):
            match = FRAME_FILE.match(entry.name)
            if match and entry.is_file():
                frames.append((int(match["frame"]), Path(entry.path)))
    except OSError:
        return []
    return sorted(frames, key=lambda item: (item[0], natural_key(item[1].name)))


def _has_frame_file(sequence: Path) -> bool:
    try:
        with os.scandir(sequence) as entries:
            return any(FRAME_FILE.match(entry.name) and entry.is_file() for entry in entries)
    except OSError:
        return False


def detect(path: Path) -> bool:
    """A folder whose subject folders hold sequence folders of ``<name>.<frame>.ply`` files.

    Looks at no more than a few subject and sequence folders and stops at the first frame file;
    a folder with a facelab ``manifest.csv``/``facelab.json`` is left to the generic layout.
    """
    path = Path(path)
    if not path.is_dir() or (path / MANIFEST).exists() or (path / METADATA).exists():
        return False
    for subject in sorted_subfolders(path)[:DETECT_LIMIT]:
        if any(_has_frame_file(sequence) for sequence in sorted_subfolders(subject)[:DETECT_LIMIT]):
            return True
    return False


def evenly_spaced(count: int, wanted: int) -> np.ndarray:
    """Indices of ``wanted`` items spread evenly over ``count`` (all of them when count <= wanted).

    Rounded ``np.linspace(0, count - 1, wanted)``, unique; the first and last items are included.
    """
    if count <= wanted:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, wanted)).astype(np.int64))


def select_records(root: Path, frames_per_sequence: int = FRAMES_PER_SEQUENCE) -> tuple[list[MeshRecord], list[str]]:
    """The records to read and the warnings about sequences that cannot be paired.

    Per (subject, sequence), sorted naturally: the lowest frame as ``neutral`` (group = the
    sequence), then the evenly spaced expressive frames labelled with the sequence name.
    """
    records, warnings = [], []
    for subject in sorted_subfolders(root):
        for sequence in sorted_subfolders(subject):
            frames = _frame_files(sequence)
            if not frames:
                continue
            if len(frames) == 1:
                warnings.append(f"sequence {subject.name}/{sequence.name} has a single frame: it gives no expressive mesh.")
            (_, neutral), rest = frames[0], frames[1:]
            records.append(MeshRecord(subject.name, NEUTRAL, neutral, group=sequence.name))
            records += [MeshRecord(subject.name, sequence.name, rest[i][1], group=sequence.name)
                        for i in evenly_spaced(len(rest), frames_per_sequence)]
    return records, warnings


def load(path: Path, progress: bool = True, frames_per_sequence: int = FRAMES_PER_SEQUENCE) -> FaceDataset:
    """Load CoMA as neutral/expressive pairs per sequence (see the module docstring).

    Args:
        frames_per_sequence: expressive frames taken per sequence (the paper: 12).

    Returns:
        A dataset of about 12 subjects x 12 sequences x (1 + 12) meshes, 5023 vertices, in mm.
    """
    root = Path(path)
    if isinstance(frames_per_sequence, bool) or not isinstance(frames_per_sequence, (int, np.integer)) or frames_per_sequence < 1:
        raise DatasetError(f"frames_per_sequence must be a whole number of at least 1, got {frames_per_sequence!r}.")
    records, warnings = select_records(root, int(frames_per_sequence))
    if not records:
        raise DatasetError(f"{root} holds no CoMA frames: expected {DESCRIPTION.split(': ', 1)[1]}.")
    dataset = load_mesh_files(records, name=f"CoMA at {root}", layout=NAME, root=root,
                              unit_scale=UNIT_SCALE, progress=progress)
    return note_unpaired(dataset, warnings)
