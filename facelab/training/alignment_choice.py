"""Choosing a new run's alignment on its validation subjects (``--alignment auto``, the default).

The ``canonical`` alignment helps data whose faces were all registered in one pose (ICT-FaceKit:
a linear neutraliser goes from 0.053 mm to 0.0023 mm, the recommended model from 0.063 to 0.014
mm on unseen subjects; ``docs/results/alignment_frame.json``, ``ict_facekit_tables.md``) and
changes nothing measurable on SynthFaces' network (``canonical_alignment_gain.json``). Which one a
user's data needs is not known in advance, so a run measures it: a linear neutraliser (ridge on
the expressive face's leading principal coefficients) is fitted on the run's sampled training
pairs in each candidate frame and scored on pairs of the validation subjects, its predictions
mapped back to the input's frame. The canonical frame wins when its linear map is better by more
than :data:`MARGIN` of the plain fit's error and by more than :data:`FLOOR` of doing nothing (so
two frames that both fit almost exactly are not told apart by rounding); otherwise the plain
template fit (``similarity``) stays. A frame that turns identities against each other is a
nonlinearity the network's linear start cannot follow either, so the linear map is the start's
own judge. The test subjects are never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from facelab.evaluation.metrics import per_vertex_error
from facelab.mesh.alignment import Alignment
from facelab.mesh.principal_directions import principal_directions

#: Principal coefficients of the expressive face the linear check reads.
LINEAR_MODES = 200
#: Improvement the canonical frame must bring: relative to the plain template fit's error, and
#: relative to the do-nothing error of the same validation pairs.
MARGIN, FLOOR = 0.02, 0.001


def linear_map_prediction(expressive: np.ndarray, neutral: np.ndarray, probes: np.ndarray,
                          modes: int = LINEAR_MODES, ridge: float = 1e-6) -> np.ndarray:
    """Neutral faces of ``probes`` (k, n, 3) predicted by a ridge map from the expressive faces'
    (P, n, 3) leading principal coefficients to their ``neutral`` faces (P, n, 3); the ridge is
    relative to the mean eigenvalue of the coefficients' Gram matrix."""
    x, y = expressive.reshape(len(expressive), -1), neutral.reshape(len(neutral), -1)
    mean_x, mean_y = x.mean(0), y.mean(0)
    basis = principal_directions(x - mean_x, modes)
    features = (x - mean_x) @ basis.T
    gram = features.T @ features
    weights = np.linalg.solve(gram + ridge * np.trace(gram) / len(gram) * np.eye(len(gram)),
                              features.T @ (y - mean_y))
    return (((probes.reshape(len(probes), -1) - mean_x) @ basis.T) @ weights + mean_y).reshape(probes.shape)


def linear_error_in_frame(alignment: Alignment, template: np.ndarray, fit: tuple[np.ndarray, np.ndarray],
                          validation: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean per-vertex error (mm) of :func:`linear_map_prediction` fitted on the ``fit`` pairs
    (expressive, neutral) in ``alignment``'s frame and scored on the ``validation`` pairs, each
    pair moved by its expressive face's transform and the prediction moved back."""
    target = torch.from_numpy(np.asarray(template, np.float64))
    fit_x, fit_y = (torch.from_numpy(np.asarray(f, np.float64)) for f in fit)
    val_x, val_y = (np.asarray(f, np.float64) for f in validation)
    to_fit = alignment.fit(fit_x, target)
    to_validation = alignment.fit(torch.from_numpy(val_x), target)
    predicted = linear_map_prediction(to_fit.apply(fit_x).numpy(), to_fit.apply(fit_y).numpy(),
                                      to_validation.apply(torch.from_numpy(val_x)).numpy())
    back = to_validation.invert(torch.from_numpy(predicted)).numpy()
    return float(per_vertex_error(back, val_y).mean())


@dataclass(frozen=True)
class AlignmentChoice:
    """The alignment a run uses, and for ``auto`` what chose it.

    ``linear_mm``: each candidate frame's linear check on the validation pairs, and doing
    nothing on the same pairs (empty when the kind was given, or when there were no held-out
    subjects to check on); ``reason``: the short line the CLI and the app's progress bar show."""

    alignment: Alignment
    requested: str
    linear_mm: dict[str, float] = field(default_factory=dict)
    validation_pairs: int = 0
    reason: str = ""

    def to_dict(self) -> dict:
        return {"requested": self.requested, "chosen": self.alignment.kind, "linear_mm": dict(self.linear_mm),
                "validation_pairs": self.validation_pairs, "reason": self.reason}


def choose_alignment(candidates: dict[str, Alignment], template: np.ndarray, fit: tuple[np.ndarray, np.ndarray],
                     validation: tuple[np.ndarray, np.ndarray]) -> AlignmentChoice:
    """``candidates["canonical"]`` when its linear check on the ``validation`` pairs beats
    ``candidates["similarity"]``'s by the module's margins; ``"similarity"`` otherwise."""
    errors = {kind: linear_error_in_frame(alignment, template, fit, validation)
              for kind, alignment in candidates.items()}
    do_nothing = float(per_vertex_error(np.asarray(validation[0], np.float64),
                                        np.asarray(validation[1], np.float64)).mean())
    plain = errors["similarity"]
    better = errors["canonical"] < (1 - MARGIN) * plain - FLOOR * do_nothing
    chosen = "canonical" if better else "similarity"
    other = "similarity" if better else "canonical"
    # short enough for the app's progress bar; the checkpoint keeps every number
    reason = f"alignment {chosen}: linear check {errors[chosen]:.3f} mm ({other} {errors[other]:.3f})"
    return AlignmentChoice(candidates[chosen], "auto", {**errors, "do_nothing": do_nothing}, len(validation[0]),
                           reason)
