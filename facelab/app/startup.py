"""What ``facelab gui`` reads before its first sample: the model and the dataset. Qt-free.

:func:`start_reading` begins :func:`read_start` in a thread of its own, before the window is
built: torch, the model and the data arrive there while the window and its views come up, and the
window shows them when they are all read. Each part fails on its own (a bad ``--checkpoint``
still opens the dataset); a failure is kept as the sentence its message box will show.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from facelab.errors import FacelabError, is_path_error, os_error_sentence


@dataclass
class Started:
    """What the start read: each part, or the sentence saying why it could not be read."""

    model: object | None = None
    model_label: str | None = None          # how the status bar names it ("bundled (synthfaces)")
    model_error: str | None = None
    bundled: bool = True                    # the bundled model was asked for (no --checkpoint)
    dataset: object | None = None
    dataset_path: str | None = None         # "synth", or the folder or file it was read from
    dataset_options: dict = field(default_factory=dict)
    dataset_error: str | None = None


def dataset_path(source: str | Path) -> str:
    """What :func:`~facelab.data.layouts.load_dataset` reads for ``source``: "synth", or a path."""
    from facelab.app.files import dataset_source

    text = str(source)
    return text if text == "synth" else str(dataset_source(text))


def start_reading(checkpoint: str | Path | None, data: str | Path | None, options: dict | None = None,
                  threads: int | None = None) -> Future:
    """:func:`read_start` in a thread begun now; the future holds its :class:`Started`."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facelab-start")
    try:
        return executor.submit(read_start, checkpoint, data, options, threads)
    finally:
        executor.shutdown(wait=False)       # the thread ends with its one task


def read_start(checkpoint: str | Path | None, data: str | Path | None, options: dict | None = None,
               threads: int | None = None) -> Started:
    """Read the model (``checkpoint``, else the bundled one) and then ``data`` (None: none).

    ``threads``: torch's threads (set here, where torch is imported). The colormaps' colours are
    read too, so the first heatmap finds them ready.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    started = Started(bundled=not checkpoint)
    try:
        from facelab.model import FaceLabModel, bundled_model_path

        if checkpoint:
            started.model = FaceLabModel.load(checkpoint)
        else:
            started.model = FaceLabModel.bundled()
            started.model_label = f"bundled ({bundled_model_path().name})"
    except FacelabError as error:
        started.model_error = str(error)
    import facelab.training.config  # noqa: F401  (the training panel's choices, read here rather than in the UI)

    if data:
        options = dict(options or {})
        try:
            from facelab.data.layouts import load_dataset

            started.dataset_path = dataset_path(data)
            started.dataset_options = options
            started.dataset = load_dataset(started.dataset_path, progress=False, **options)
        except FacelabError as error:
            started.dataset_error = str(error)
        except OSError as error:
            if not is_path_error(error):
                raise
            started.dataset_error = os_error_sentence(error)
    from facelab.render import COLORMAPS, colormap_table

    for name in COLORMAPS:
        colormap_table(name)
    return started
