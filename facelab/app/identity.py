"""Gallery identification for the identity panel: the rank-k matches of one probe face.

The same protocol as ``facelab evaluate`` (paper Sec. 4.2): the gallery holds the neutral faces
of a set of subjects, probe and gallery go through ``FaceLabModel.identity_embedding``, and
they are compared by ``cosine_similarity``; a subject with several gallery faces counts with its
best one. Qt-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelab.evaluation.metrics import cosine_similarity


@dataclass(frozen=True)
class TrueRank:
    """Where the probe's true subject stands in the ranked gallery."""

    rank: int             # its row in the ranked list, as the identity panel lists it (ties by name)
    tied: int             # other subjects with exactly its cosine similarity
    protocol_rank: int    # the rank ``facelab evaluate`` counts: ties count against it

    @property
    def sentence(self) -> str:
        text = f"rank {self.rank}"
        if self.tied:
            text += (f", tied with {self.tied} other subject{'s' if self.tied > 1 else ''} "
                     f"(rank {self.protocol_rank} when ties count against it, as in facelab evaluate)")
        return text


@dataclass(frozen=True)
class Match:
    rank: int          # 1-based
    subject: str
    score: float       # cosine similarity
    index: int         # the gallery face's index in the dataset
    # Cosines of one probe often crowd in a narrow range (0.988 to 1.000): these two separate them.
    margin: float | None = None    # how far its cosine lies above the next subject's (None: the last)
    spread: float = 1.0            # where its cosine lies between the gallery's lowest (0) and highest (1)


class Gallery:
    """The neutral faces of ``subjects`` in ``dataset``, embedded once by ``model``."""

    def __init__(self, model, dataset, subjects) -> None:
        wanted = set(subjects)
        self.indices = np.array([i for i, r in enumerate(dataset.records) if r.is_neutral and r.subject in wanted],
                                dtype=np.int64)
        self.labels = np.array([dataset.records[i].subject for i in self.indices])
        if self.indices.size:
            self.embeddings = np.asarray(model.identity_embedding(np.array(dataset.vertices[self.indices])))
        else:
            self.embeddings = np.zeros((0, 1), dtype=np.float32)

    def __len__(self) -> int:
        return len(set(self.labels.tolist()))

    def matches(self, embedding: np.ndarray, k: int | None = 5) -> list[Match]:
        """The gallery subjects by decreasing cosine similarity to ``embedding`` (the best k)."""
        ranked = self.ranking(embedding)
        return ranked[:k] if k else ranked

    def ranking(self, embedding: np.ndarray) -> list[Match]:
        """Every gallery subject by decreasing cosine similarity to ``embedding``."""
        if not self.indices.size or embedding is None:
            return []
        similarity = cosine_similarity(np.asarray(embedding).reshape(1, -1), self.embeddings)[0]
        best: dict[str, tuple[float, int]] = {}
        for score, label, index in zip(similarity.tolist(), self.labels.tolist(), self.indices.tolist()):
            if label not in best or score > best[label][0]:
                best[label] = (score, index)
        ordered = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
        scores = [score for _subject, (score, _index) in ordered]
        low, high = scores[-1], scores[0]
        return [Match(rank + 1, subject, score, index,
                      margin=score - scores[rank + 1] if rank + 1 < len(scores) else None,
                      spread=(score - low) / (high - low) if high > low else 1.0)
                for rank, (subject, (score, index)) in enumerate(ordered)]

    def true_rank(self, embedding: np.ndarray, subject: str, ranked: list[Match] | None = None) -> TrueRank | None:
        """Where ``subject`` stands for this probe: its row in :meth:`matches` and its ties
        (``ranked``: the probe's :meth:`ranking`, if the caller has it)."""
        ranked = self.ranking(embedding) if ranked is None else ranked
        row = next((m for m in ranked if m.subject == subject), None)
        if row is None:
            return None
        tied = sum(1 for m in ranked if m.subject != subject and m.score == row.score)
        return TrueRank(row.rank, tied, self.rank_of(embedding, subject, ranked))

    def rank_of(self, embedding: np.ndarray, subject: str, ranked: list[Match] | None = None) -> int | None:
        """The rank of ``subject`` for this probe (ties count against it, as in ``rank_k_identification``)."""
        ranked = self.ranking(embedding) if ranked is None else ranked
        scores = {m.subject: m.score for m in ranked}
        if subject not in scores:
            return None
        return 1 + sum(1 for other, score in scores.items() if other != subject and score >= scores[subject])
