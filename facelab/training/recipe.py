"""The recommended recipe: how the bundled model was trained, for any data.

The identity-preserving variant with the expression mixture (one ridge map per training
expression, weighed by a classifier of the input's expression), two blends of expressions per
training subject, each subject's neutral face ten times as a pair of its own, inputs with up to
0.1 mm of noise, and no epoch: on SynthFaces the start's closed-form fits hold nearly all of the
quality (docs/results.md), and the recogniser is then fitted alone on the start's codes of 12,800
training pairs so that the model names its closest training subjects. Each setting was chosen
on validation subjects (docs/training.md, docs/neutraliser.md). The alignment is left to
``auto``, a check on each dataset's validation subjects; the bundled model names ``similarity``,
which on SynthFaces validates the same as the ``canonical`` frame ``auto`` picks there.

``facelab train --recommended`` and the app's "recommended" method start from these settings; any
option given as well overrides its setting (``--epochs 5`` trains five epochs on top of the fits).
On SynthFaces the command also samples the bundled model's 2,700 identities unless told otherwise:
the fits want many people, and on SynthFaces' default 100 (63 fitted on) the recipe validates at
0.40 mm where 2,700 give 0.13 (docs/neutraliser.md#few-training-subjects).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from facelab.training.config import ExperimentalOptions, TrainConfig

#: The recipe's :class:`TrainConfig` fields (the rest keep TrainConfig's defaults).
RECOMMENDED: dict[str, Any] = {
    "variant": "identity-preserving",
    "fusion_mixture": True,
    "mixture_blends": 2,
    "neutral_pairs": 10,
    "input_noise_mm": 0.1,
    "epochs": 0,
    "experimental": ExperimentalOptions(recognizer_warmup_samples=12800),
}

#: SynthFaces identities ``facelab train --recommended`` samples when none are given (the bundled model's).
RECOMMENDED_SYNTH_IDENTITIES = 2700


def recommended_config(**fields: Any) -> TrainConfig:
    """The recommended recipe as a :class:`TrainConfig`, with ``fields`` set on top of it. A
    method named in ``fields`` (another variant, or the one ridge map) replaces the recipe's
    expression mixture and its blends, unless ``fields`` keeps them too."""
    recipe = dict(RECOMMENDED)
    if fields.get("variant", recipe["variant"]) != recipe["variant"] or fields.get("fusion_ridge"):
        for name in ("fusion_mixture", "mixture_blends"):
            recipe.pop(name)
    values = {**recipe, **fields}
    if values["experimental"] is RECOMMENDED["experimental"]:  # each config its own copy
        values["experimental"] = dataclasses.replace(values["experimental"])
    return TrainConfig(**values)
