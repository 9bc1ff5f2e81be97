"""One sample as the app and ``facelab render`` show it: an expressive face, the model's neutral, the
ground truth, and the error and identity figures that go with them.

The app, ``facelab render`` and tests compute samples the same way, through the core
(``FaceLabModel.analyse``, ``per_vertex_error``, ``error_summary``, ``top_subjects``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facelab.evaluation.metrics import error_summary, per_vertex_error


@dataclass
class Sample:
    """What the three views and the readout show.

    Attributes:
        label: where it comes from ("synth_090 / mouth_open_3", or a file name).
        expressive: (n, 3) mm.
        truth: the ground-truth neutral (n, 3) mm, or None.
        predicted: the model's neutral (n, 3) mm, or None without a model.
        error: per-vertex Euclidean error (n,) of ``predicted`` to ``truth`` in mm, or None.
        subject: the true subject when known (dataset samples).
        part: "train" or "test" for dataset samples of a split, else "".
        top5: the recognizer's most probable training subjects [(subject, probability)].
        embedding: the identity embedding (cosine-compared with a gallery), or None.
        index: the expressive mesh's index in its dataset, or None.
        expressions: the model's three likeliest expressions for the input [(expression,
            probability)]; empty for a model without the expression mixture.
    """

    label: str
    expressive: np.ndarray
    truth: np.ndarray | None = None
    predicted: np.ndarray | None = None
    error: np.ndarray | None = None
    subject: str | None = None
    part: str = ""
    top5: list[tuple[str, float]] = field(default_factory=list)
    embedding: np.ndarray | None = None
    index: int | None = None
    expressions: list[tuple[str, float]] = field(default_factory=list)

    @property
    def stats(self) -> dict[str, float] | None:
        """Mean, std, median and max error in mm (``error_summary``), or None without an error."""
        return error_summary(self.error) if self.error is not None else None

    @property
    def displacement(self) -> np.ndarray | None:
        """Per-vertex distance of the input to the ground truth (else to the prediction), mm."""
        reference = self.truth if self.truth is not None else self.predicted
        return None if reference is None else per_vertex_error(self.expressive, reference)


def compute_sample(model, expressive: np.ndarray, truth: np.ndarray | None = None, *, label: str = "",
                   subject: str | None = None, part: str = "", index: int | None = None) -> Sample:
    """Predict the neutral face and identity of ``expressive`` with ``model`` (or none) and
    measure the error to ``truth`` when given."""
    expressive = np.array(expressive, dtype=np.float32)  # a writable copy (datasets may be memory-mapped)
    truth = None if truth is None else np.array(truth, dtype=np.float32)
    sample = Sample(label, expressive, truth, subject=subject, part=part, index=index)
    if model is None:
        return sample
    analysis = model.analyse(expressive)
    sample.predicted = np.asarray(analysis.neutral, dtype=np.float32)
    if truth is not None:
        sample.error = per_vertex_error(sample.predicted, truth).astype(np.float32)
    sample.embedding = np.asarray(analysis.embedding)
    sample.top5 = model.top_subjects_of_embedding(sample.embedding, k=5)
    sample.expressions = model.top_expressions_of_reading(analysis.expression_probabilities)
    return sample
