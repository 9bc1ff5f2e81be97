"""What an opened or dropped path is, and the recent-files list. Qt-free.

A path is one of: a mesh file (an expressive face, or a ground-truth neutral when it is dropped
on the ground-truth view), a checkpoint (``NAME.json``/``NAME.safetensors`` of a facelab
checkpoint, or a run folder holding ``best``/``last``), or a dataset (a folder in a known
layout, a morphable-model ``.npz``, or the ``manifest.csv``/``facelab.json`` of a folder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from facelab.errors import FacelabError
from facelab.mesh.io import MESH_SUFFIXES

MESH = "mesh"
TRUTH = "truth"
DATASET = "dataset"
CHECKPOINT = "checkpoint"
KINDS = (MESH, TRUTH, DATASET, CHECKPOINT)
KIND_LABELS = {MESH: "expressive mesh", TRUTH: "ground-truth neutral", DATASET: "dataset", CHECKPOINT: "checkpoint"}
RECENT_LIMIT = 10


def _is_checkpoint_json(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return b"facelab-checkpoint" in head or path.with_suffix(".safetensors").is_file()


def _checkpoint_files(stem: Path) -> bool:
    """``stem.json`` and ``stem.safetensors`` both exist (``stem`` without extension)."""
    return (stem.with_name(stem.name + ".json").is_file()
            and stem.with_name(stem.name + ".safetensors").is_file())


def checkpoint_target(path: str | Path) -> Path | None:
    """The checkpoint ``path`` names, spelt as ``facelab`` commands accept it, or None if it names none:
    ``NAME.json``/``NAME.safetensors``, ``NAME`` without extension (``runs/x/best``), or a run folder
    (``runs/x``, meaning its ``best``, else its ``last``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best", "last"):
            if _checkpoint_files(path / name):
                return path
        return None
    if path.suffix.lower() in (".json", ".safetensors"):
        stem = path.with_suffix("")
        return path if _checkpoint_files(stem) or (path.suffix.lower() == ".json" and _is_checkpoint_json(path)) else None
    if not path.exists() and _checkpoint_files(path):
        return path
    return None


def classify(path: str | Path) -> str:
    """The kind of ``path`` (``mesh``, ``dataset`` or ``checkpoint``).

    Raises:
        FacelabError: it does not exist or is none of these.
    """
    path = Path(path)
    if not path.exists() and _checkpoint_files(path):
        return CHECKPOINT                  # runs/x/best: a checkpoint named without its extension
    if not path.exists():
        raise FacelabError(f"{path} does not exist: expected a mesh file, a dataset folder or a checkpoint.")
    suffix = path.suffix.lower()
    if path.is_dir():
        if any((path / f"{name}.json").is_file() for name in ("best", "last")):
            return CHECKPOINT
        return DATASET
    if suffix in MESH_SUFFIXES:
        return MESH
    if suffix == ".safetensors":
        return CHECKPOINT
    if suffix == ".json":
        if path.name == "facelab.json":
            return DATASET
        return CHECKPOINT if _is_checkpoint_json(path) else DATASET
    if suffix in (".npz", ".csv"):
        return DATASET
    raise FacelabError(
        f"{path} is not something facelab opens: expected a mesh ({', '.join(MESH_SUFFIXES)}), a dataset "
        "folder or morphable-model .npz, or a checkpoint (.json/.safetensors or a run folder)."
    )


def dataset_source(path: str | Path) -> Path:
    """The dataset a path stands for: a folder's ``manifest.csv``/``facelab.json`` means the folder."""
    path = Path(path)
    if path.is_file() and (path.name in ("manifest.csv", "facelab.json")):
        return path.parent
    return path


@dataclass(frozen=True)
class RecentFile:
    kind: str
    path: str

    @property
    def label(self) -> str:
        return f"{Path(self.path).name}  ({KIND_LABELS.get(self.kind, self.kind)})"


def add_recent(recent: list[RecentFile], kind: str, path: str | Path, limit: int = RECENT_LIMIT) -> list[RecentFile]:
    """``recent`` with ``path`` moved to the front (no duplicates), at most ``limit`` long."""
    entry = RecentFile(kind, str(Path(path).resolve()) if str(path) != "synth" else "synth")
    return [entry, *[r for r in recent if r != entry]][:limit]


def recent_to_json(recent: list[RecentFile]) -> str:
    return json.dumps([[r.kind, r.path] for r in recent])


def recent_from_json(text: str | None) -> list[RecentFile]:
    try:
        items = json.loads(text or "[]")
        return [RecentFile(str(kind), str(path)) for kind, path in items if kind in KINDS][:RECENT_LIMIT]
    except (ValueError, TypeError):
        return []


#: Dropped paths open in this order: a checkpoint first (meshes are checked against its template),
#: then a dataset, then meshes.
OPENING_ORDER = {CHECKPOINT: 0, DATASET: 1, MESH: 2}


def opening_order(paths: list[str | Path]) -> list[tuple[str, str | Path]]:
    """(kind, path) of each path, in the order they are opened together (drag and drop).

    Raises:
        FacelabError: one of them does not exist or is nothing facelab opens.
    """
    kinds = [(classify(path), path) for path in paths]
    return sorted(kinds, key=lambda item: OPENING_ORDER[item[0]])
