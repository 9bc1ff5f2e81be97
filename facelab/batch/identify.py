"""Rank a gallery dataset's subjects for probe meshes by identity similarity."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facelab.batch.sources import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_WORKERS,
    check_generated,
    list_meshes,
    loaded_chunks,
    log_above_bar,
    warn_skipped,
)
from facelab.data.dataset import FaceDataset
from facelab.errors import DatasetError, FacelabError
from facelab.evaluation.metrics import cosine_similarity


@dataclass(frozen=True)
class GalleryMatch:
    """A gallery subject ranked for one probe."""

    rank: int            # 1-based
    subject: str
    similarity: float    # cosine similarity of identity embeddings


class IdentityGallery:
    """The neutral faces of a dataset's subjects, embedded once, to rank probes against.

    The protocol of ``facelab evaluate``'s rank-k identification: probe and gallery go through
    ``FaceLabModel.identity_embedding`` and are compared by
    :func:`~facelab.evaluation.metrics.cosine_similarity`; a subject with several neutral faces
    counts with its best one.

    Args:
        model: a :class:`~facelab.model.FaceLabModel`.
        dataset: the gallery; subjects without a neutral face are not in it.
        batch_size: neutral faces embedded per model call (a memory-mapped dataset is read a
            chunk at a time).

    Raises:
        FacelabError: the dataset has no neutral face or is not registered to the model's template.
    """

    def __init__(self, model, dataset: FaceDataset, batch_size: int = DEFAULT_BATCH_SIZE * 2) -> None:
        self.name = dataset.name
        neutral = np.array([i for i, record in enumerate(dataset.records) if record.is_neutral], dtype=np.int64)
        if neutral.size == 0:
            raise DatasetError(f"{dataset.name} has no neutral face: the gallery is made of each subject's neutral.")
        model.check_mesh(dataset.mesh(int(neutral[0])))
        self.labels = np.array([dataset.records[i].subject for i in neutral])
        self.embeddings = np.concatenate([
            np.atleast_2d(model.identity_embedding(np.array(dataset.vertices[neutral[start:start + batch_size]])))
            for start in range(0, neutral.size, batch_size)
        ])

    @property
    def subjects(self) -> list[str]:
        return sorted(set(self.labels.tolist()))

    def rank(self, embeddings: np.ndarray, k: int | None = 5) -> list[list[GalleryMatch]]:
        """For each probe embedding (p, d), the gallery subjects by decreasing similarity (the best k;
        equal similarities in subject order)."""
        similarity = cosine_similarity(np.atleast_2d(embeddings), self.embeddings)
        subjects = self.subjects
        per_subject = np.stack([similarity[:, self.labels == subject].max(axis=1) for subject in subjects], axis=1)
        ranked = []
        for scores in per_subject:
            order = sorted(range(len(subjects)), key=lambda column: (-scores[column], subjects[column]))
            ranked.append([GalleryMatch(rank + 1, subjects[column], float(scores[column]))
                           for rank, column in enumerate(order[:k] if k else order)])
        return ranked


def identify(model, probe: str | os.PathLike, gallery: str | os.PathLike, k: int = 5,
             batch_size: int = DEFAULT_BATCH_SIZE, workers: int = DEFAULT_WORKERS, progress: bool = True,
             **options) -> dict:
    """Rank the subjects of a gallery dataset for each probe mesh, by identity similarity.

    Args:
        model: a :class:`~facelab.model.FaceLabModel`.
        probe: a mesh file, or a folder (or dataset) whose every mesh is a probe.
        gallery: ``"synth"``, a dataset folder or a morphable-model ``.npz``: its subjects' neutral
            faces are the gallery (see :class:`IdentityGallery`).
        k: how many subjects to list per probe.
        batch_size: probes embedded per model call.
        workers: threads that read probe files ahead of the model.
        progress: show progress bars.
        options: passed to the gallery's loader (``identities``, ``seed``).

    Returns:
        ``{"gallery", "gallery_subjects", "k", "probes": [{"probe", "subject", "matches":
        [{"rank", "subject", "similarity"}]}], "skipped": [{"probe", "reason"}]}``; a probe's
        ``subject`` is its true subject when its folder's layout says it, else "".

    Raises:
        FacelabError: a single probe file cannot be read or is not registered to the model's
            template, no probe of a folder can, or the gallery cannot be read.
    """
    from facelab.data.layouts import load_dataset

    probes = list_meshes(probe, progress=progress)
    if len(probes.inputs) == 1 and probes.inputs[0].path is not None and Path(probe).is_file():
        probes.read(probes.inputs[0], model)  # one file: its error is the command's error
    check_generated(probes, model)
    index = IdentityGallery(model, load_dataset(gallery, progress=progress, **options))
    result = {"gallery": index.name, "gallery_subjects": len(index.subjects), "k": k, "probes": [], "skipped": []}
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="facelab-identify")
    try:
        show = progress and len(probes.inputs) > 1
        with tqdm(total=len(probes.inputs), desc="Identifying", unit="mesh", disable=not show) as bar, \
                log_above_bar(show):
            for chunk in loaded_chunks(probes, probes.inputs, model, pool, batch_size):
                ready = [loaded for loaded in chunk if loaded.failure is None]
                for loaded in chunk:
                    if loaded.failure is not None:
                        warn_skipped(loaded.item.label, loaded.failure)
                        result["skipped"].append({"probe": loaded.item.label, "reason": loaded.failure})
                if ready:
                    embeddings = model.identity_embedding(np.stack([loaded.vertices for loaded in ready]))
                    for loaded, matches in zip(ready, index.rank(embeddings, k)):
                        result["probes"].append({
                            "probe": loaded.item.label, "subject": loaded.item.subject,
                            "matches": [{"rank": m.rank, "subject": m.subject, "similarity": m.similarity}
                                        for m in matches],
                        })
                bar.update(len(chunk))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if not result["probes"]:
        reason = result["skipped"][0]["reason"].rstrip(".")
        raise FacelabError(f"none of the {len(result['skipped'])} probe meshes of {probe} could be used "
                           f"(first: {reason}).")
    return result
