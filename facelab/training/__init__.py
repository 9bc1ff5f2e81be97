"""Training: losses, the trainer loop with its events, and checkpoints (no Qt here).

The names below are imported on first use, so that reading a checkpoint (``facelab.model``, the
app) does not import the trainer and its dependencies.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "Checkpoint": "checkpoint", "CheckpointError": "checkpoint", "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "VARIANTS": "config", "ExperimentalOptions": "config", "LossWeights": "config", "TrainConfig": "config",
    "TrainingCallback": "events", "TrainingControl": "events",
    "RECOMMENDED": "recipe", "recommended_config": "recipe",
    "Trainer": "trainer",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'facelab.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"facelab.training.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
