"""Training: losses, the trainer loop with its events, and checkpoints (no Qt here)."""

from facelab.training.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from facelab.training.config import VARIANTS, LossWeights, TrainConfig
from facelab.training.events import TrainingCallback, TrainingControl
from facelab.training.trainer import Trainer

__all__ = [
    "VARIANTS",
    "Checkpoint",
    "CheckpointError",
    "LossWeights",
    "TrainConfig",
    "Trainer",
    "TrainingCallback",
    "TrainingControl",
    "load_checkpoint",
    "save_checkpoint",
]
