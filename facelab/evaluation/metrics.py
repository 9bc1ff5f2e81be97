"""Metrics of the paper's protocol: per-vertex error (Sec. 4.1) and rank-k identification (Sec. 4.2);
and how well a model reads expressions."""

from __future__ import annotations

import numpy as np


def per_vertex_error(predicted: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """Euclidean distance per vertex, in the inputs' units (mm): (..., n, 3) -> (..., n)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    ground_truth = np.asarray(ground_truth, dtype=np.float64)
    if predicted.shape != ground_truth.shape:
        raise ValueError(f"shapes differ: {predicted.shape} vs {ground_truth.shape}")
    return np.linalg.norm(predicted - ground_truth, axis=-1)


def error_summary(errors: np.ndarray) -> dict[str, float]:
    """Mean, std, median and max of per-vertex errors (any shape), in mm."""
    errors = np.asarray(errors, dtype=np.float64).reshape(-1)
    if errors.size == 0:
        raise ValueError("no errors to summarise")
    return {
        "mean_error_mm": float(errors.mean()),
        "std_error_mm": float(errors.std()),
        "median_error_mm": float(np.median(errors)),
        "max_error_mm": float(errors.max()),
    }


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(p, d) x (g, d) -> (p, g) cosine similarities; zero vectors get similarity 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def rank_k_identification(
    probe_embeddings: np.ndarray,
    probe_labels: list[str] | np.ndarray,
    gallery_embeddings: np.ndarray,
    gallery_labels: list[str] | np.ndarray,
    ks: tuple[int, ...] = (1, 5),
) -> dict[int, float]:
    """The fraction of probes whose true identity is among the k most similar gallery entries.

    The gallery holds one entry per subject (several per subject are reduced to the best match).
    Ties are broken against the probe (a tie with a wrong identity counts as ranked above it).
    """
    probe_labels = np.asarray(probe_labels)
    gallery_labels = np.asarray(gallery_labels)
    if len(probe_labels) == 0:
        raise ValueError("no probes")
    missing = set(probe_labels) - set(gallery_labels)
    if missing:
        raise ValueError(f"probe identities missing from the gallery: {sorted(missing)[:5]}")
    similarity = cosine_similarity(probe_embeddings, gallery_embeddings)
    identities = np.unique(gallery_labels)
    # best similarity per identity: (p, s)
    per_identity = np.stack([similarity[:, gallery_labels == identity].max(axis=1) for identity in identities], axis=1)
    true_column = np.searchsorted(identities, probe_labels)
    true_score = per_identity[np.arange(len(probe_labels)), true_column]
    others = per_identity.copy()
    others[np.arange(len(probe_labels)), true_column] = -np.inf
    rank = 1 + (others >= true_score[:, None]).sum(axis=1)
    return {k: float((rank <= k).mean()) for k in ks}


#: The upper ends of the reading-confidence bands (the likeliest expression's probability) over
#: which :func:`expression_recognition` reports the error; below the first, a reading is uncertain.
CONFIDENCE_BANDS = (0.5, 0.8, 0.95, 1.0)
#: A reading whose likeliest expression is less probable than this is uncertain (the app says so).
UNCERTAIN_BELOW = CONFIDENCE_BANDS[0]


def expression_recognition(labels: list[str], expressions: tuple[str, ...] | list[str],
                           probabilities: np.ndarray, errors: np.ndarray | None = None) -> dict:
    """How often a model's expression reading names the true label: over the faces whose label is
    one of ``expressions`` (the model knows no others), the share whose likeliest expression is
    theirs (``accuracy``) and whose three likeliest include it (``top3_accuracy``). With each
    face's prediction error, also the mean error of the faces read right and read wrong, and
    ``by_confidence``: per band of the likeliest expression's probability
    (:data:`CONFIDENCE_BANDS`, over all faces), the share of faces and their mean error.

    Args:
        labels: each face's true expression label.
        expressions: what the model tells apart (:attr:`FaceLabModel.expressions`).
        probabilities: (P, k) readings, one row per face.
        errors: (P,) each face's mean prediction error in mm, or None.
    """
    probabilities = np.asarray(probabilities)
    index = {expression: i for i, expression in enumerate(expressions)}
    known = np.array([label in index for label in labels], dtype=bool)
    result: dict = {"pairs": int(known.sum()), "accuracy": float("nan"), "top3_accuracy": float("nan")}
    if known.any():
        truth = np.array([index[label] for label, ok in zip(labels, known) if ok])
        order = np.argsort(-probabilities[known], axis=1)
        right = order[:, 0] == truth
        result.update(accuracy=float(np.mean(right)),
                      top3_accuracy=float(np.mean((order[:, :3] == truth[:, None]).any(axis=1))))
    if errors is None:
        return result
    errors = np.asarray(errors, dtype=np.float64)
    result["error_read_right_mm"] = result["error_read_wrong_mm"] = float("nan")
    if known.any():
        known_errors = errors[known]
        if right.any():
            result["error_read_right_mm"] = float(known_errors[right].mean())
        if (~right).any():
            result["error_read_wrong_mm"] = float(known_errors[~right].mean())
    confidence = probabilities.max(axis=1)
    bands, low = [], 0.0
    for high in CONFIDENCE_BANDS:
        inside = (confidence >= low) & ((confidence < high) if high < 1.0 else (confidence <= high))
        bands.append({"from": low, "to": high, "share": float(inside.mean()),
                      "mean_error_mm": float(errors[inside].mean()) if inside.any() else float("nan")})
        low = high
    result["by_confidence"] = bands
    return result
