"""``facelab evaluate``: the paper's protocol on the test split of unseen subjects.

Neutralisation (Sec. 4.1): mean per-vertex Euclidean error (mm) between predicted and
ground-truth neutral faces over all test pairs, with std and median, and per expression.
Identification (Sec. 4.2): gallery = the neutral faces of the test subjects, probes = their
expressive faces; embeddings of both go through the same inference path (for the full model
R(G(Enc(x))), the recognizer's pre-softmax output), compared by cosine similarity; rank-1 and
rank-5 rates as fractions.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from facelab.data.dataset import DatasetSplit, FaceDataset
from facelab.errors import FacelabError
from facelab.evaluation.baselines import LinearNeutraliser
from facelab.evaluation.metrics import error_summary, per_vertex_error, rank_k_identification


def _mesh_errors(dataset: FaceDataset, pairs, predicted: np.ndarray) -> np.ndarray:
    truth = np.asarray(dataset.vertices[np.array([p.neutral for p in pairs])])
    return per_vertex_error(predicted, truth)  # (P, n)


def _gallery(dataset: FaceDataset, split: DatasetSplit) -> list[int]:
    """The identification gallery: the neutral faces of the test subjects (paper 4.2)."""
    test = set(split.test_subjects)
    return [i for i, r in enumerate(dataset.records) if r.is_neutral and r.subject in test]


def evaluate_model(model, dataset: FaceDataset, split: DatasetSplit, baselines: bool = True) -> dict:
    """The ``--json`` contract of ``facelab evaluate`` (see the README), as a dict."""
    if dataset.n_vertices != model.n_vertices or dataset.topology_hash != model.meta.get("template_hash", dataset.topology_hash):
        raise FacelabError(
            f"the model expects {model.n_vertices} vertices in its template's order and the data "
            f"has {dataset.n_vertices}: evaluate it on data registered to the same template."
        )
    test_pairs = dataset.pairs_of(split.test_subjects)
    if not test_pairs:
        raise FacelabError(f"{dataset.name} has no expressive/neutral pairs among its test subjects.")
    expressive = np.array([p.expressive for p in test_pairs])
    predicted, probe_embeddings = model.neutralise_and_embed(np.asarray(dataset.vertices[expressive]))
    errors = _mesh_errors(dataset, test_pairs, predicted)
    summary = error_summary(errors)
    per_expression: dict[str, list[float]] = defaultdict(list)
    for pair, mesh_error in zip(test_pairs, errors.mean(axis=1)):
        per_expression[pair.expression].append(float(mesh_error))

    gallery = _gallery(dataset, split)
    gallery_labels = [dataset.records[i].subject for i in gallery]
    probe_labels = [p.subject for p in test_pairs]
    gallery_vertices = np.asarray(dataset.vertices[np.array(gallery)])
    ranks = rank_k_identification(probe_embeddings, probe_labels, model.identity_embedding(gallery_vertices),
                                  gallery_labels, ks=(1, 5))
    result = {
        "checkpoint": str(model.source) if model.source else None,
        "data": dataset.name,
        "variant": model.variant,
        "test_subjects": len(split.test_subjects),
        "test_pairs": len(test_pairs),
        "mean_error_mm": summary["mean_error_mm"],
        "std_error_mm": summary["std_error_mm"],
        "median_error_mm": summary["median_error_mm"],
        "rank1": ranks[1],
        "rank5": ranks[5],
        "per_expression": {name: float(np.mean(v)) for name, v in sorted(per_expression.items())},
    }
    if baselines:
        result["baselines"] = evaluate_baselines(dataset, split, test_pairs, gallery, gallery_labels, probe_labels)
    return result


def evaluate_baselines(dataset: FaceDataset, split: DatasetSplit, test_pairs, gallery, gallery_labels, probe_labels) -> dict:
    expressive = np.asarray(dataset.vertices[np.array([p.expressive for p in test_pairs])])
    do_nothing = _mesh_errors(dataset, test_pairs, expressive)
    linear = LinearNeutraliser.fit(dataset, dataset.pairs_of(split.train_subjects))
    predicted = linear.neutralise(expressive)
    linear_errors = _mesh_errors(dataset, test_pairs, predicted)
    flat_gallery = np.asarray(dataset.vertices[np.array(gallery)], dtype=np.float64).reshape(len(gallery), -1) - linear.mean_n
    flat_probes = predicted.reshape(len(predicted), -1).astype(np.float64) - linear.mean_n
    ranks = rank_k_identification(flat_probes, probe_labels, flat_gallery, gallery_labels, ks=(1, 5))
    return {
        "do_nothing": {"mean_error_mm": float(do_nothing.mean())},
        "linear": {"mean_error_mm": float(linear_errors.mean()), "rank1": ranks[1], "rank5": ranks[5]},
    }


def split_baselines(dataset: FaceDataset, split: DatasetSplit) -> dict:
    """The ``baselines`` entry of the ``--json`` contract for ``split``, without a model."""
    test_pairs = dataset.pairs_of(split.test_subjects)
    gallery = _gallery(dataset, split)
    return evaluate_baselines(dataset, split, test_pairs, gallery, [dataset.records[i].subject for i in gallery],
                              [p.subject for p in test_pairs])
