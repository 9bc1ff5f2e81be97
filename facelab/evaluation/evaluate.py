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
from dataclasses import dataclass, field

import numpy as np

from facelab.data.dataset import DatasetSplit, FaceDataset
from facelab.errors import FacelabError
from facelab.evaluation.baselines import LinearNeutraliser
from facelab.evaluation.metrics import error_summary, expression_recognition, per_vertex_error, rank_k_identification


def _mesh_errors(dataset: FaceDataset, pairs, predicted: np.ndarray) -> np.ndarray:
    truth = np.asarray(dataset.vertices[np.array([p.neutral for p in pairs])])
    return per_vertex_error(predicted, truth)  # (P, n)


def _gallery(dataset: FaceDataset, split: DatasetSplit) -> list[int]:
    """The identification gallery: the neutral faces of the test subjects (paper 4.2)."""
    test = set(split.test_subjects)
    return [i for i, r in enumerate(dataset.records) if r.is_neutral and r.subject in test]


def unseen_split(model, split: DatasetSplit) -> tuple[DatasetSplit, list[str]]:
    """``split`` without the test subjects the model trained on, and those subjects: a model is
    never scored on its own training subjects as if they were unseen. Subjects are matched by
    name, so data that reuses a training subject's name for another person loses it too."""
    seen = sorted(set(split.test_subjects) & model.training_subjects)
    if not seen:
        return split, []
    test = tuple(s for s in split.test_subjects if s not in seen)
    if not test:
        raise FacelabError("every test subject of this split is among the model's training subjects: "
                           "evaluate it on subjects it has not seen.")
    return DatasetSplit(tuple(sorted(set(split.train_subjects) | set(seen))), test, split.seed,
                        split.train_fraction), seen


def _per_expression(pairs, mesh_errors: np.ndarray) -> dict[str, float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for pair, error in zip(pairs, mesh_errors):
        groups[pair.expression].append(float(error))
    return {name: float(np.mean(values)) for name, values in sorted(groups.items())}


#: Levels at which :attr:`MethodErrors.quantiles` gives the per-vertex error: the cumulative error
#: curve at 0.1 % resolution, whatever the number of test pairs and vertices.
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 1001)

#: How :class:`EvaluationErrors` names the model's row beside the baselines'.
MODEL_ROW = "facelab"


@dataclass
class MethodErrors:
    """The per-vertex errors of one method (the model or a baseline) over the test pairs, reduced
    to what the evaluation figures draw.

    Attributes:
        per_vertex: (n,) each template vertex's error in mm, averaged over the test pairs.
        per_pair: (P,) each test pair's mean per-vertex error in mm, in the order of the pairs.
        quantiles: the per-vertex errors of every pair and vertex at :data:`QUANTILE_LEVELS`, mm.
    """

    per_vertex: np.ndarray
    per_pair: np.ndarray
    quantiles: np.ndarray

    @classmethod
    def of(cls, errors: np.ndarray) -> MethodErrors:
        """From per-vertex errors (P, n) in mm."""
        errors = np.asarray(errors)
        return cls(errors.mean(axis=0), errors.mean(axis=1), np.quantile(errors, QUANTILE_LEVELS))

    def share_below(self, millimetres: np.ndarray | float) -> np.ndarray:
        """The share (0..1) of all per-vertex errors below each of ``millimetres``."""
        return np.interp(millimetres, self.quantiles, QUANTILE_LEVELS, left=0.0, right=1.0)


@dataclass
class EvaluationErrors:
    """What :func:`evaluate_model_with_errors` keeps beside the JSON for the figures: per method
    (``facelab``, ``do_nothing`` and, with the baselines, ``linear``) its :class:`MethodErrors`,
    and each test pair's expression."""

    expressions: list[str]
    methods: dict[str, MethodErrors] = field(default_factory=dict)


def evaluate_model(model, dataset: FaceDataset, split: DatasetSplit, baselines: bool = True,
                   robustness: bool = True) -> dict:
    """The ``--json`` contract of ``facelab evaluate`` (see docs/evaluation.md), as a dict.

    Test subjects the model trained on are left out and listed in ``excluded_training_subjects``.
    """
    return _evaluate(model, dataset, split, baselines, robustness, keep_errors=False)[0]


def evaluate_model_with_errors(model, dataset: FaceDataset, split: DatasetSplit, baselines: bool = True,
                               robustness: bool = True) -> tuple[dict, EvaluationErrors]:
    """:func:`evaluate_model`'s result and, from the same predictions, the errors the evaluation
    figures draw (:func:`facelab.evaluation.figures.write_evaluation_figures`)."""
    return _evaluate(model, dataset, split, baselines, robustness, keep_errors=True)


def _evaluate(model, dataset: FaceDataset, split: DatasetSplit, baselines: bool, robustness: bool,
              keep_errors: bool) -> tuple[dict, EvaluationErrors | None]:
    if dataset.n_vertices != model.n_vertices or dataset.topology_hash != model.meta.get("template_hash", dataset.topology_hash):
        raise FacelabError(
            f"the model expects {model.n_vertices} vertices in its template's order and the data "
            f"has {dataset.n_vertices}: evaluate it on data registered to the same template."
        )
    split, excluded = unseen_split(model, split)
    test_pairs = dataset.pairs_of(split.test_subjects)
    if not test_pairs:
        raise FacelabError(f"{dataset.name} has no expressive/neutral pairs among its test subjects.")
    expressive_faces = np.asarray(dataset.vertices[np.array([p.expressive for p in test_pairs])])
    analysis = model.analyse(expressive_faces)
    predicted, probe_embeddings = analysis.neutral, analysis.embedding
    errors = _mesh_errors(dataset, test_pairs, predicted)
    summary = error_summary(errors)
    do_nothing_errors = _mesh_errors(dataset, test_pairs, expressive_faces)
    input_errors = do_nothing_errors.mean(axis=1)
    kept = None
    if keep_errors:
        kept = EvaluationErrors([p.expression for p in test_pairs],
                                {MODEL_ROW: MethodErrors.of(errors), "do_nothing": MethodErrors.of(do_nothing_errors)})

    gallery = _gallery(dataset, split)
    gallery_labels = [dataset.records[i].subject for i in gallery]
    probe_labels = [p.subject for p in test_pairs]
    gallery_vertices = np.asarray(dataset.vertices[np.array(gallery)])
    gallery_embeddings = model.identity_embedding(gallery_vertices)
    ranks = rank_k_identification(probe_embeddings, probe_labels, gallery_embeddings, gallery_labels, ks=(1, 5))
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
        "per_expression": _per_expression(test_pairs, errors.mean(axis=1)),
        "worse_than_input": float(np.mean(errors.mean(axis=1) > input_errors)),
        "alignment": model.alignment.kind,
        "excluded_training_subjects": excluded,
    }
    if analysis.expression_probabilities is not None:
        result["expression_recognition"] = expression_recognition(
            [p.expression for p in test_pairs], model.expressions, analysis.expression_probabilities,
            errors.mean(axis=1))
    if robustness:
        result["robustness"] = robustness_rows(model, dataset, test_pairs, gallery_vertices)
        # Every probe turned, shifted and scaled at once, against the unmoved gallery.
        scale, rotation, shift = 1.25, MOVES["rotated_30deg"][1], MOVES["translated_50mm"][2]
        moved = (scale * expressive_faces @ rotation.T + shift).astype(np.float32)
        result["robustness"]["rank1_moved_probes"] = rank_k_identification(
            model.identity_embedding(moved), probe_labels, gallery_embeddings, gallery_labels, ks=(1,))[1]
    if baselines:
        result["baselines"], linear_errors = _baselines(dataset, split, test_pairs, gallery, gallery_labels,
                                                        probe_labels)
        if kept is not None:
            kept.methods["linear"] = MethodErrors.of(linear_errors)
    return result, kept


#: The moved inputs of the robustness rows: a face and its truth moved alike, error in the moved frame
#: (divided by the scale, so every row is in the unmoved face's millimetres).
MOVES = {
    "translated_50mm": (1.0, np.eye(3), np.full(3, 50.0 / np.sqrt(3.0))),
    "rotated_30deg": (1.0, np.array([[np.cos(np.pi / 6), 0.0, np.sin(np.pi / 6)], [0.0, 1.0, 0.0],
                                     [-np.sin(np.pi / 6), 0.0, np.cos(np.pi / 6)]]), np.zeros(3)),
    "scaled_0.8": (0.8, np.eye(3), np.zeros(3)),
    "scaled_1.25": (1.25, np.eye(3), np.zeros(3)),
}
NOISE_MM = 0.2
#: At most this many blends (a seeded sample of the test pairs beyond it), to bound the memory.
BLENDED_MAX = 2000


def blended_pairs(dataset: FaceDataset, test_pairs, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Faces doing two things at once: for each test pair, the same subject's face with another
    expression label added, ``e_a + e_b - n`` (each displacement from the neutral face kept), and
    the neutral face (inputs (P, n, 3), truth (P, n, 3); seeded; subjects with one label give none;
    at most :data:`BLENDED_MAX`)."""
    rng = np.random.default_rng([seed, 3])
    of_subject: dict[str, list] = {}
    for pair in test_pairs:
        of_subject.setdefault(pair.subject, []).append(pair)
    chosen = []
    if len(test_pairs) > BLENDED_MAX:
        test_pairs = [test_pairs[i] for i in np.sort(rng.choice(len(test_pairs), BLENDED_MAX, replace=False))]
    for pair in test_pairs:
        others = [o for o in of_subject[pair.subject] if o.expression != pair.expression and o.neutral == pair.neutral]
        if others:
            chosen.append((pair, others[rng.integers(len(others))]))
    if not chosen:
        empty = np.zeros((0, dataset.n_vertices, 3), np.float32)
        return empty, empty
    vertices = dataset.vertices
    first = np.asarray(vertices[np.array([a.expressive for a, _ in chosen])], dtype=np.float32)
    second = np.asarray(vertices[np.array([b.expressive for _, b in chosen])], dtype=np.float32)
    truth = np.asarray(vertices[np.array([a.neutral for a, _ in chosen])], dtype=np.float32)
    return first + second - truth, truth


def robustness_rows(model, dataset: FaceDataset, test_pairs, neutral_faces: np.ndarray, seed: int = 0) -> dict:
    """How the model fares on inputs a user brings: ``neutral_in_mm`` (how far a neutral face in
    comes back from itself), ``noise_0.2mm`` (Gaussian noise of 0.2 mm standard deviation per
    coordinate on the input), each move of :data:`MOVES`, ``mirrored`` (x negated: the other
    handedness), and ``blended_mm`` with its ``blended_do_nothing_mm`` and
    ``blended_worse_than_input`` (two expressions at once, :func:`blended_pairs`); mean errors in mm.
    A model that reads expressions and learned ``neutral`` (or ``blend``) also gives the share of
    neutral faces read as ``neutral`` (of blends read as ``blend``)."""
    expressive = np.asarray(dataset.vertices[np.array([p.expressive for p in test_pairs])], dtype=np.float32)
    truth = np.asarray(dataset.vertices[np.array([p.neutral for p in test_pairs])], dtype=np.float32)
    neutral_in = model.analyse(neutral_faces)
    rows = {"neutral_in_mm": float(per_vertex_error(neutral_in.neutral, neutral_faces).mean())}
    rows.update(_read_as(model, neutral_in.expression_probabilities, "neutral", "neutral_in_read_as_neutral"))
    noise = np.random.default_rng(seed).normal(0.0, NOISE_MM, expressive.shape).astype(np.float32)
    rows[f"noise_{NOISE_MM}mm"] = float(per_vertex_error(model.neutralise(expressive + noise), truth).mean())
    center = truth.reshape(-1, 3).mean(axis=0)
    for name, (scale, rotation, shift) in {**MOVES, "mirrored": (1.0, np.diag([-1.0, 1.0, 1.0]), np.zeros(3))}.items():
        def moved(faces, scale=scale, rotation=rotation, shift=shift):
            return (scale * (faces - center) @ rotation.T + center + shift).astype(np.float32)
        rows[name] = float(per_vertex_error(model.neutralise(moved(expressive)), moved(truth)).mean() / scale)
    rows.update(blended_rows(model, dataset, test_pairs, seed))
    return rows


def blended_rows(model, dataset: FaceDataset, test_pairs, seed: int = 0) -> dict:
    """``blended_mm``, ``blended_do_nothing_mm`` and ``blended_worse_than_input`` of the faces
    :func:`blended_pairs` makes (none where it makes none)."""
    blended, truth = blended_pairs(dataset, test_pairs, seed)
    if not len(blended):
        return {}
    analysis = model.analyse(blended)
    model_errors = per_vertex_error(analysis.neutral, truth).mean(axis=1)
    input_errors = per_vertex_error(blended, truth).mean(axis=1)
    return {"blended_mm": float(model_errors.mean()), "blended_do_nothing_mm": float(input_errors.mean()),
            "blended_worse_than_input": float(np.mean(model_errors > input_errors)),
            **_read_as(model, analysis.expression_probabilities, "blend", "blended_read_as_blend")}


def _read_as(model, probabilities: np.ndarray | None, expression: str, key: str) -> dict:
    """``{key: share of faces whose likeliest expression is expression}``, or {} for a model that
    does not read that expression."""
    if probabilities is None or expression not in model.expressions:
        return {}
    return {key: float(np.mean(np.argmax(probabilities, axis=1) == model.expressions.index(expression)))}


def evaluate_baselines(dataset: FaceDataset, split: DatasetSplit, test_pairs, gallery, gallery_labels, probe_labels) -> dict:
    """``do_nothing`` (the input as the prediction) and ``linear`` (ridge regression on 200 PCA
    components, :class:`LinearNeutraliser`) fitted on every pair of ``split``'s training subjects;
    ``linear.fitted_on`` counts them."""
    return _baselines(dataset, split, test_pairs, gallery, gallery_labels, probe_labels)[0]


def _baselines(dataset: FaceDataset, split: DatasetSplit, test_pairs, gallery, gallery_labels,
               probe_labels) -> tuple[dict, np.ndarray]:
    """:func:`evaluate_baselines`' rows and the linear baseline's per-vertex errors (P, n)."""
    expressive = np.asarray(dataset.vertices[np.array([p.expressive for p in test_pairs])])
    do_nothing = _mesh_errors(dataset, test_pairs, expressive)
    linear = LinearNeutraliser.fit(dataset, dataset.pairs_of(split.train_subjects))
    predicted = linear.neutralise(expressive)
    linear_errors = _mesh_errors(dataset, test_pairs, predicted)
    blended, blended_truth = blended_pairs(dataset, test_pairs)
    flat_gallery = np.asarray(dataset.vertices[np.array(gallery)], dtype=np.float64).reshape(len(gallery), -1) - linear.mean_n
    flat_probes = predicted.reshape(len(predicted), -1).astype(np.float64) - linear.mean_n
    ranks = rank_k_identification(flat_probes, probe_labels, flat_gallery, gallery_labels, ks=(1, 5))
    return {
        "do_nothing": {"mean_error_mm": float(do_nothing.mean()),
                       "per_expression": _per_expression(test_pairs, do_nothing.mean(axis=1))},
        "linear": {"mean_error_mm": float(linear_errors.mean()), "rank1": ranks[1], "rank5": ranks[5],
                   "worse_than_input": float(np.mean(linear_errors.mean(axis=1) > do_nothing.mean(axis=1))),
                   "per_expression": _per_expression(test_pairs, linear_errors.mean(axis=1)),
                   "fitted_on": {"subjects": len(split.train_subjects), "dataset": dataset.name},
                   **({"blended_mm": float(per_vertex_error(linear.neutralise(blended), blended_truth).mean())}
                      if len(blended) else {})},
    }, linear_errors


def split_baselines(dataset: FaceDataset, split: DatasetSplit) -> dict:
    """The ``baselines`` entry of the ``--json`` contract for ``split``, without a model."""
    test_pairs = dataset.pairs_of(split.test_subjects)
    gallery = _gallery(dataset, split)
    return evaluate_baselines(dataset, split, test_pairs, gallery, [dataset.records[i].subject for i in gallery],
                              [p.subject for p in test_pairs])
