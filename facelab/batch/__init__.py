"""Work on many meshes at once: neutralise a folder or dataset, draw their figures, export a
dataset, identify probes.

What ``facelab neutralize DATA --out DIR``, ``facelab render DATA --out DIR``, ``facelab export``
and ``facelab identify`` run.

A folder or dataset is first *listed* (:func:`list_meshes`: file names and labels, no mesh is
read), then streamed in chunks: background threads read the next chunk's files and write the
previous chunk's predictions while the model predicts the current one, so memory stays at a few
chunks whatever the size of the folder. Every file is written atomically (a stopped run leaves
only complete files), a mesh with a non-finite vertex is never written, and a file that cannot be
read (or is not registered to the model's template) is skipped with a warning naming it and is
listed in the report with the reason.
"""

from facelab.batch.export import export_dataset
from facelab.batch.identify import GalleryMatch, IdentityGallery, identify
from facelab.batch.neutralise import (
    KEPT,
    OUTPUT_FORMATS,
    REPORT_COLUMNS,
    REPORT_NAME,
    SKIPPED,
    WRITTEN,
    NeutraliseReport,
    neutralise_meshes,
)
from facelab.batch.render import RENDER_BATCH_SIZE, RenderReport, render_meshes
from facelab.batch.sources import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_WORKERS,
    MeshInput,
    MeshSource,
    is_batch_input,
    list_meshes,
    meshes_of_dataset,
)

__all__ = [
    "DEFAULT_BATCH_SIZE", "DEFAULT_WORKERS", "KEPT", "OUTPUT_FORMATS", "RENDER_BATCH_SIZE", "REPORT_COLUMNS",
    "REPORT_NAME", "SKIPPED", "WRITTEN", "GalleryMatch", "IdentityGallery", "MeshInput", "MeshSource",
    "NeutraliseReport", "RenderReport", "export_dataset", "identify", "is_batch_input", "list_meshes",
    "meshes_of_dataset", "neutralise_meshes", "render_meshes",
]
