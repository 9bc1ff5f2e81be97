"""The face recognition module ``R`` (paper Sec. 2.3): identity logits from a neutral latent code."""

from __future__ import annotations

from torch import Tensor, nn


class Recognizer(nn.Module):
    """``FC(hidden) + ReLU``, then ``FC(n_subjects)``: one logit per training subject.

    Returns the pre-softmax logits (the softmax lives in the cross-entropy loss). They are also
    the identity embedding of paper Sec. 4.2, compared by cosine similarity for identification,
    which is why there is no separate embedding layer. To identify other subjects (fine-tuning),
    :meth:`reset_head` replaces the last layer.

    Shapes: z (B, latent) -> logits (B, n_subjects).
    """

    def __init__(self, n_subjects: int, latent: int = 25, hidden: int = 100) -> None:
        super().__init__()
        if n_subjects < 1:
            raise ValueError(f"the recogniser needs at least one subject, got n_subjects={n_subjects}")
        self.latent, self.hidden = latent, hidden
        self.features = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_subjects)

    @property
    def n_subjects(self) -> int:
        return self.head.out_features

    def reset_head(self, n_subjects: int) -> None:
        """Replace the last layer by a freshly initialised one for ``n_subjects`` subjects."""
        if n_subjects < 1:
            raise ValueError(f"the recogniser needs at least one subject, got n_subjects={n_subjects}")
        old = self.head.weight
        self.head = nn.Linear(self.hidden, n_subjects, device=old.device, dtype=old.dtype)

    def forward(self, z: Tensor) -> Tensor:
        return self.head(self.features(z))
