"""FaceScape TU models: ``<root>/<subject id>/models_reg/<k>_<expression>.obj``.

Each released subject (847 of 938) has 20 topologically uniform base meshes, ``1_neutral.obj``
to ``20_brow_lower.obj`` (26,317 vertices). The maintainers state the unit is millimetres, with
every model scaled to a mean interpupillary distance. Materials, textures and displacement maps
beside the meshes are ignored.

Subjects are sorted by id (numerically). A subject lacking some of the 20 files gets a warning;
unreadable files are skipped with a warning by the vertex cache; the expressive meshes of a
subject whose neutral is missing or broken are kept but left out of the pairs, with a warning.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from facelab.data.dataset import NEUTRAL, FaceDataset, MeshRecord
from facelab.data.layouts.listing import natural_key, note_unpaired, sorted_subfolders
from facelab.data.vertex_cache import load_mesh_files
from facelab.errors import DatasetError


NAME = "facescape"
DESCRIPTION = "facescape: <root>/<subject id>/models_reg/<k>_<expression>.obj (FaceScape TU models; 1_neutral is the neutral)"

MODELS_FOLDER = "models_reg"
MODEL_FILE = re.compile(r"^(\d+)_(.+)\.obj$", re.IGNORECASE)

#: The 20 TU-model expressions in file order (1_neutral.obj ... 20_brow_lower.obj).
EXPRESSIONS = (
    "neutral", "smile", "mouth_stretch", "anger", "jaw_left", "jaw_right", "jaw_forward", "mouth_left",
    "mouth_right", "dimpler", "chin_raiser", "lip_puckerer", "lip_funneler", "sadness", "lip_roll", "grin",
    "cheek_blowing", "eye_closed", "brow_raiser", "brow_lower",
)

#: Subject folders that ``detect`` looks into.
DETECT_LIMIT = 5


def _model_files(subject: Path) -> list[tuple[int, str, Path]]:
    """(number, expression, path) of a subject's TU meshes, by number."""
    models = []
    try:
        for entry in os.scandir(subject / MODELS_FOLDER):
            match = MODEL_FILE.match(entry.name)
            if match and entry.is_file():
                models.append((int(match[1]), match[2], Path(entry.path)))
    except OSError:
        return []
    return sorted(models, key=lambda item: (item[0], natural_key(item[1])))


def detect(path: Path) -> bool:
    """A folder whose first subject folders hold ``models_reg/<k>_<expression>.obj`` files."""
    path = Path(path)
    if not path.is_dir():
        return False
    for subject in sorted_subfolders(path)[:DETECT_LIMIT]:
        try:
            with os.scandir(subject / MODELS_FOLDER) as entries:
                if any(MODEL_FILE.match(entry.name) for entry in entries):
                    return True
        except OSError:
            continue
    return False


def select_records(root: Path) -> tuple[list[MeshRecord], list[str]]:
    """The records (subjects by id, meshes by number) and warnings about missing files."""
    records, warnings = [], []
    for subject in sorted_subfolders(root):
        models = _model_files(subject)
        if not models:
            continue
        present = {number for number, _, _ in models}
        missing = [f"{number}_{name}" for number, name in enumerate(EXPRESSIONS, start=1) if number not in present]
        if missing:
            warnings.append(
                f"subject {subject.name} lacks {len(missing)} of the {len(EXPRESSIONS)} TU models ({', '.join(missing)}); "
                "the others are used."
            )
        for _, expression, path in models:
            records.append(MeshRecord(subject.name, NEUTRAL if expression.lower() == NEUTRAL else expression, path))
    return records, warnings


def load(path: Path, progress: bool = True, unit_scale: float = 1.0) -> FaceDataset:
    """Load FaceScape's TU models as neutral/expressive pairs per subject.

    Args:
        unit_scale: multiplies file coordinates to get millimetres (1: the models are in mm).

    Returns:
        Up to 847 subjects x 20 meshes (``neutral`` and 19 expressions such as ``smile``), in mm.
    """
    root = Path(path)
    records, warnings = select_records(root)
    if not records:
        raise DatasetError(f"{root} holds no FaceScape TU models: expected {DESCRIPTION.split(': ', 1)[1]}.")
    dataset = load_mesh_files(records, name=f"FaceScape at {root}", layout=NAME, root=root,
                              unit_scale=unit_scale, progress=progress)
    return note_unpaired(dataset, warnings)
