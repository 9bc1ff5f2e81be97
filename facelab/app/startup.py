"""What ``facelab gui`` reads before its first sample: the data, then the model. Qt-free.

:func:`start_reading` begins reading in a thread of its own, before the window is built: the data
first (numpy and the files only), then the model (torch, the longest part). The window shows the
data's first sample as soon as it arrives and its prediction when the model does, so the faces
appear before torch is imported. Each part fails on its own (a bad ``--checkpoint`` still
opens the dataset); a failure is kept as the sentence its message box will show.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from facelab.errors import FacelabError, is_path_error, os_error_sentence


@dataclass
class DataRead:
    """The dataset the start read, or the sentence saying why it could not be read."""

    dataset: object | None = None
    path: str | None = None                 # "synth", or the folder or file it was read from
    options: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class ModelRead:
    """The model the start read, or the sentence saying why it could not be read."""

    model: object | None = None
    label: str | None = None                # how the status bar names it ("bundled (synthfaces)")
    error: str | None = None
    bundled: bool = True                    # the bundled model was asked for (no --checkpoint)


class StartReading:
    """The two reads under way, in this order in one thread: ``data`` (a future of a
    :class:`DataRead`, None when no data was asked for), then ``model`` (of a :class:`ModelRead`).

    The model's read (torch's import, most of the start) waits for :meth:`release_model`: the
    window calls it once the data's first sample is drawn, so that drawing does not share the
    interpreter with torch's import.
    """

    def __init__(self, checkpoint, data, options: dict | None, threads: int | None) -> None:
        self._released = threading.Event()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facelab-start")
        try:
            self.data: Future = executor.submit(read_data, data, options)
            self.model: Future = executor.submit(self._read_model_when_released, checkpoint, threads)
        finally:
            executor.shutdown(wait=False)       # the thread ends with its two tasks

    def _read_model_when_released(self, checkpoint, threads) -> ModelRead:
        self._released.wait()
        return read_model(checkpoint, threads)

    def release_model(self) -> None:
        """Let the model's read begin (at once if the data are still being read: after them)."""
        self._released.set()

    def wait(self) -> None:
        """Wait for both reads (the model's released first)."""
        self.release_model()
        wait([self.data, self.model])


def dataset_path(source: str | Path) -> str:
    """What :func:`~facelab.data.layouts.load_dataset` reads for ``source``: "synth", or a path."""
    from facelab.app.files import dataset_source

    text = str(source)
    return text if text == "synth" else str(dataset_source(text))


def start_reading(checkpoint: str | Path | None, data: str | Path | None, options: dict | None = None,
                  threads: int | None = None) -> StartReading:
    """:func:`read_data`, then :func:`read_model` (once released), in a thread begun now."""
    return StartReading(checkpoint, data, options, threads)


def read_data(data: str | Path | None, options: dict | None = None) -> DataRead | None:
    """Read ``data`` (None: none asked for, None returned). torch is not imported here."""
    if not data:
        return None
    read = DataRead(options=dict(options or {}))
    try:
        from facelab.data.layouts import load_dataset

        read.path = dataset_path(data)
        read.dataset = load_dataset(read.path, progress=False, **read.options)
    except FacelabError as error:
        read.error = str(error)
    except OSError as error:
        if not is_path_error(error):
            raise
        read.error = os_error_sentence(error)
    return read


def read_model(checkpoint: str | Path | None, threads: int | None = None) -> ModelRead:
    """Read the model (``checkpoint``, else the bundled one).

    ``threads``: torch's threads (set here, where torch is imported). The training panel's choices
    and the colormaps' colours are read too, so the UI thread finds them ready.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    read = ModelRead(bundled=not checkpoint)
    try:
        from facelab.model import FaceLabModel, bundled_model_path

        if checkpoint:
            read.model = FaceLabModel.load(checkpoint)
        else:
            read.model = FaceLabModel.bundled()
            read.label = f"bundled ({bundled_model_path().name})"
    except FacelabError as error:
        read.error = str(error)
    import facelab.training.config  # noqa: F401  (the training panel's choices, read here rather than in the UI)
    from facelab.render import COLORMAPS, colormap_table

    for name in COLORMAPS:
        colormap_table(name)
    return read
