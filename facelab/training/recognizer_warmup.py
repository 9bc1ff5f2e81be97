"""Fitting the randomly initialised recogniser to a started network's codes before joint training.

From the linear start (facelab/training/linear_init.py) the encoder, decoder and G begin at a
good solution while the recogniser R (and the discriminator D) begin random. Trained jointly
from there, R's first gradients are those of a random classifier over hundreds of subjects
(cross-entropy about 2 x ln(subjects)), and they flow back through the codes into the encoder
and G, pulling the start apart before R has learnt anything: fine-tuning a pretrained network
under a random head distorts its features, which is why linear probing first helps (Kumar et
al., "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution", ICLR
2022). This fits R alone first, on the frozen start's codes of a sample of training pairs,
with an optimiser of its own that is then discarded.

Measured on SynthFaces (900 identities, the previous bundled model's data; test error on the default
split's 30 unseen subjects), it helps a short run and hurts a full one, so it is opt-in
(``TrainConfig.recognizer_warmup_samples``, ``facelab train --recognizer-warmup 6400``):

* 600 steps of joint training from the linear start (0.471 mm; ``scripts/recipe_screen.py``):
  0.471 mm without the warm-up (R's cross-entropy still 12.5 after 150 steps), 0.459 mm with it
  (0.04 at step 0); ``gca``, which has no R, reached 0.453 mm. Fitting D the same way as well
  changed the result by 0.002 mm, so only R is fitted here.
* The previous bundled model's full run (3 epochs, 5,283 steps): 0.483 mm with it (validation 0.557,
  0.535, 0.537 by epoch) against 0.456 mm without (0.558, 0.525, 0.526). A recogniser that fits
  the training subjects from the first step drives L_id to ~0 at once; without the warm-up its
  slow start leaves the encoder a long stretch trained mostly by L_rec. We have not tested that
  reading further.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def _codes(network, batches, rows: torch.Tensor, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(G(z_e), z_n, labels) of the training pairs at ``rows`` (indices into ``batches.pairs``)."""
    generated, neutral, labels = [], [], []
    for start in range(0, len(rows), chunk):
        x_e, x_n, label = batches.rows(rows[start:start + chunk].numpy())
        generated.append(network.translate(network.encode(x_e)))
        neutral.append(network.encode(x_n))
        labels.append(label)
    return torch.cat(generated), torch.cat(neutral), torch.cat(labels)


def warm_up_recognizer(network, batches, samples: int = 6400, steps: int = 600, lr: float = 1e-3,
                       batch_size: int = 256, seed: int = 0) -> float | None:
    """Fit R on L_id (Eq. 5) over the codes of ``samples`` training pairs; the rest stays frozen.

    Args:
        network: a NeutralisationNetwork; one without a recogniser (``no-id``, ``gca``) is left
            untouched.
        batches: the run's PairBatches (its pairs, labels and normalisation).
        samples: how many training pairs to encode (a seeded sample; all of them when fewer).
        steps: Adam steps on mini-batches of ``batch_size`` codes.
        seed: the sample and the mini-batches; the global random state is left alone.

    Returns R's last cross-entropy (both terms of Eq. 5), or None when nothing was fitted.
    """
    if network.recognizer is None or samples <= 0 or steps <= 0:
        return None
    generator = torch.Generator().manual_seed(seed)
    count = len(batches.pairs)
    rows = torch.randperm(count, generator=generator)[:min(samples, count)]
    generated, neutral, labels = _codes(network, batches, rows)
    known = labels >= 0  # pairs of subjects outside the recogniser's list carry label -1
    generated, neutral, labels = generated[known], neutral[known], labels[known]
    if not len(labels):
        return None
    recognizer = network.recognizer
    optimizer = torch.optim.Adam(recognizer.parameters(), lr=lr)
    for _ in range(steps):
        pick = torch.randint(len(labels), (min(batch_size, len(labels)),), generator=generator).to(labels.device)
        loss = (F.cross_entropy(recognizer(generated[pick]), labels[pick])
                + F.cross_entropy(recognizer(neutral[pick]), labels[pick]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())
