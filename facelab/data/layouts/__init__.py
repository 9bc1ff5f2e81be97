"""Dataset layouts: recognise a folder or file by its structure and load it as a FaceDataset.

Each layout is a module of this package with:

- ``NAME``: the ``--format`` name;
- ``DESCRIPTION``: one line, the expected structure, shown when nothing matches;
- ``detect(path: Path) -> bool``: a cheap check of the structure (no mesh is read);
- ``load(path: Path, progress: bool = True, **options) -> FaceDataset``.

Detection tries the layouts in :data:`LAYOUT_ORDER`: the specific ones before the generic
folder layout, which would otherwise claim almost any tree.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from facelab.data.dataset import FaceDataset
from facelab.errors import DatasetError

#: ``--format`` name -> module, in detection order.
LAYOUT_ORDER: dict[str, str] = {
    "ict-facekit": "facelab.data.layouts.ict_facekit",
    "coma": "facelab.data.layouts.coma",
    "facewarehouse": "facelab.data.layouts.facewarehouse",
    "facescape": "facelab.data.layouts.facescape",
    "generic": "facelab.data.layouts.generic",
}

SYNTH = "synth"


def layout_module(name: str) -> ModuleType:
    if name not in LAYOUT_ORDER:
        raise DatasetError(f"unknown dataset format '{name}': expected one of {', '.join(LAYOUT_ORDER)}.")
    return importlib.import_module(LAYOUT_ORDER[name])


def describe_layouts() -> str:
    return "; ".join(f"{layout_module(name).DESCRIPTION}" for name in LAYOUT_ORDER)


def detect_layout(path: str | Path) -> str:
    """The name of the first layout whose structure ``path`` has.

    Raises:
        DatasetError: the path does not exist or matches no known layout.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} does not exist: expected a dataset folder or a morphable-model file.")
    for name in LAYOUT_ORDER:
        if layout_module(name).detect(path):
            return name
    raise DatasetError(f"{path} is in no known dataset layout: expected {describe_layouts()}.")


def load_dataset(source: str | Path, format: str | None = None, progress: bool = True, **options) -> FaceDataset:
    """Load ``"synth"`` (the built-in SynthFaces) or a dataset folder/file, detecting its layout.

    Args:
        source: ``"synth"`` or a path.
        format: force a layout by name instead of detecting it.
        progress: show a progress bar while meshes are read for the first time.
        options: passed to the layout's ``load`` (e.g. ``identities=30, seed=1`` for SynthFaces
            and morphable models).
    """
    if str(source) == SYNTH or format == SYNTH:
        from facelab.data.synth_dataset import load_synthfaces

        return load_synthfaces(**options)
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"{path} does not exist: expected 'synth', a dataset folder or a morphable-model file.")
    name = format if format is not None else detect_layout(path)
    module = layout_module(name)
    if format is not None and not module.detect(path):
        raise DatasetError(f"{path} is not in the {name} layout: expected {module.DESCRIPTION}.")
    return module.load(path, progress=progress, **options)
