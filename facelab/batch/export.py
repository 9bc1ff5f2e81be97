"""Any dataset facelab reads, written as mesh files in the generic layout."""

from __future__ import annotations

import os


from facelab.data.dataset import FaceDataset


def export_dataset(source: str | os.PathLike, out: str | os.PathLike, fmt: str = "ply", layout: str | None = None,
                   progress: bool = True, **options) -> FaceDataset:
    """Write any dataset facelab reads as mesh files in the generic layout, with its labels.

    ``out`` gets ``<subject>/[<group>/]<expression>.<fmt>``, ``manifest.csv`` (subject,
    expression, path, group) and ``facelab.json``, which :func:`facelab.data.load_dataset` reads
    back as the same meshes with the same labels (see
    :func:`~facelab.data.layouts.generic.write_generic`).

    Args:
        source: ``"synth"``, a dataset folder or a morphable-model ``.npz``.
        out: a new or empty folder, or an earlier facelab export.
        fmt: "ply" or "obj".
        layout: force a dataset layout by name instead of detecting it.
        progress: show progress bars.
        options: passed to the dataset's loader (``identities``, ``seed``).

    Returns:
        The dataset written.
    """
    from facelab.data.layouts import load_dataset
    from facelab.data.layouts.generic import write_generic

    dataset = load_dataset(source, format=layout, progress=progress, **options)
    write_generic(dataset, out, fmt, progress=progress)
    return dataset
