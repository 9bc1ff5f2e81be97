"""The JSON half of a checkpoint: its schema, and one sentence naming the first key that breaks it.

:func:`~facelab.training.checkpoint.save_checkpoint` writes these keys and
:func:`~facelab.training.checkpoint.load_checkpoint` checks them (``jsonschema``) before anything
reads them, so a hand-edited or damaged JSON is refused by name rather than failing later with a
``TypeError``. Keys a checkpoint of an older facelab lacks are optional; unknown keys are kept.
Each ``description`` is what the message says was expected.

The architecture (variant, Laplacian, downsampling) is recorded once, in ``network``, and the
training settings (mixed precision among them) in ``train_config``. Checkpoints of older facelab
versions also repeat ``laplacian``, ``variant``, ``amp`` and ``downsample`` at the top level: those
keys are still checked, so that such a checkpoint loads as it did.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, validators

_WHOLE = {"type": "integer", "minimum": 0, "description": "a whole number of at least 0"}
_POSITIVE = {"type": "integer", "minimum": 1, "description": "a whole number of at least 1"}
_TEXT = {"type": "string", "description": "a string"}
_NAMES = {"type": "array", "items": {"type": "string", "description": "a subject name (a string)"},
          "description": "a list of subject names"}
_WIDTHS = {"type": "array", "items": {"type": "integer", "minimum": 1, "description": "a whole number of at least 1"},
           "description": "a list of whole numbers"}
_NUMBER_OR_NULL = {"type": ["number", "null"], "description": "a number or null"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "a JSON object",
    "required": ["format", "version", "network", "tensors_sha256"],
    "properties": {
        "format": {"const": "facelab-checkpoint", "description": "\"facelab-checkpoint\""},
        "version": {**_WHOLE, "description": "the checkpoint format, a whole number"},
        "tensors_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                           "description": "the SHA-256 of the .safetensors file, 64 hexadecimal digits"},
        "network": {
            "type": "object",
            "description": "the network configuration, a JSON object",
            "required": ["n_vertices", "triangles_hash"],
            "properties": {
                "n_vertices": _POSITIVE, "triangles_hash": _TEXT, "variant": _TEXT, "n_subjects": _WHOLE,
                "laplacian_kind": _TEXT, "K": _POSITIVE, "latent": _POSITIVE, "conv": _TEXT,
                "encoder_channels": _WIDTHS, "decoder_channels": _WIDTHS, "generator_hidden": _WIDTHS,
                "discriminator_hidden": _WIDTHS, "recognizer_hidden": _POSITIVE, "downsample": _WIDTHS,
                "expression_dims": _POSITIVE, "identity_dims": _WHOLE,
                "fusion_ridge": {"type": "boolean", "description": "true or false"},
                "fusion_expressions": {"type": "array", "items": _TEXT,
                                       "description": "a list of expression names"},
            },
        },
        "template_hash": _TEXT,
        "subjects": _NAMES,
        "epoch": _WHOLE,
        "position": {
            "type": "object",
            "description": "the training position, a JSON object",
            "properties": {"epoch": _WHOLE, "step": _WHOLE, "global_step": _WHOLE, "best_val": _NUMBER_OR_NULL},
        },
        "scheduler": {"type": "object", "description": "the learning-rate scheduler's state, a JSON object"},
        "metrics": {"type": "object", "additionalProperties": _NUMBER_OR_NULL,
                    "description": "the last metrics, an object of numbers"},
        "data": {
            "type": "object",
            "description": "the training data's description, a JSON object",
            "properties": {"source": _TEXT, "name": _TEXT, "layout": _TEXT,
                           "options": {"type": "object", "description": "a JSON object"}},
        },
        "split": {
            "type": "object",
            "description": "the subject split, an object of name lists",
            "properties": {"train": _NAMES, "test": _NAMES, "validation": _NAMES},
        },
        "train_config": {"type": "object", "description": "the training configuration, a JSON object"},
        "world_size": _POSITIVE,
        "global_batch_size": _POSITIVE,
        "alignment": {
            "type": ["object", "null"],
            "description": "the alignment, a JSON object with \"kind\" and \"region\"",
            "properties": {"kind": {"enum": ["none", "similarity", "canonical"],
                                    "description": "\"none\", \"similarity\" or \"canonical\""},
                           "correction_modes": {**_POSITIVE, "description": "the canonical correction's modes"},
                           "region": {"type": ["array", "null"],
                                      "items": {"type": "integer", "minimum": 0, "description": "a vertex index"},
                                      "description": "a list of vertex indices"}},
        },
        "alignment_choice": {"type": "object", "description": "what chose the alignment, a JSON object"},
        "mixture_fit": {"type": "object", "description": "what the expression mixture's fit chose, a JSON object"},
        "optimizers": {"type": "object", "description": "the optimisers' scalars, a JSON object"},
        # Written by older facelab versions only (see the module docstring).
        "laplacian": _TEXT,
        "variant": _TEXT,
        "amp": {"enum": ["off", "bf16"], "description": "\"off\" or \"bf16\""},
        "downsample": _WIDTHS,
    },
}

_ITEMS = Draft202012Validator.VALIDATORS["items"]


def _items(validator, items, instance, schema):
    """``items``, with a one-pass check first for lists of plain strings or whole numbers (a run's
    thousands of subject names and region indices: descending into each took 0.3 s of a model's
    load); jsonschema's own check runs where that pass finds a bad item, so messages are its own."""
    if isinstance(instance, list) and isinstance(items, dict) and set(items) <= {"type", "minimum", "description"}:
        kind, low = items.get("type"), items.get("minimum", float("-inf"))
        if kind == "string" and all(type(item) is str for item in instance):
            return
        if kind == "integer" and all(type(item) is int and item >= low for item in instance):
            return
    yield from _ITEMS(validator, items, instance, schema)


_VALIDATOR = validators.extend(Draft202012Validator, {"items": _items})(SCHEMA)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def meta_problem(meta: Any) -> str | None:
    """None if ``meta`` fits :data:`SCHEMA`, else one clause naming the first bad key and what was expected."""
    error = next(iter(sorted(_VALIDATOR.iter_errors(meta), key=lambda e: list(map(str, e.absolute_path)))), None)
    if error is None:
        return None
    if error.validator == "required":
        missing = next(key for key in error.validator_value if key not in error.instance)
        where = "/".join(map(str, error.absolute_path))
        return f"lacks the key \"{missing}\"" + (f" in \"{where}\"" if where else "")
    key = "/".join(map(str, error.absolute_path))
    expected = error.schema.get("description", error.message) if isinstance(error.schema, dict) else error.message
    if not key:
        return f"is not {expected}"
    return f"has \"{key}\": {_shown(error.instance)}, expected {expected}"
