"""Fit the expression mixture of the ``identity-preserving`` fusion at the start of a run.

The mixture (:class:`facelab.nn.expression_mixture.ExpressionMixture`) works on 250 numbers per
face rather than on the mesh, so it is fitted on its own before the network trains: every
training pair is projected once into the fusion's subspaces, then

* each expression's map is a ridge regression, in closed form, from the input's standardised
  coordinates to the neutral face's ``U`` coordinates over that expression's pairs;
* the router is a classifier of the pair's expression from the input's ``U`` coordinates, trained
  with Adam on the cross-entropy.

Expressions are the training pairs' labels (a subject's own neutral face, trained with
``neutral_pairs``, is the expression ``neutral``). Labels with fewer than :data:`MIN_PAIRS` pairs
share one map, ``other``. The run's ``input_noise_mm`` enters both: the maps' normal equations
get the expected noise covariance (exact for zero-mean noise), so that no map amplifies a
scanner's noise, and the router trains on noisy coordinates, drawn with the covariance that mesh
noise has in those coordinates. The neutral map is left without it: a face with no expression
should come back as it is, not smoothed. Seeded: the same
pairs and seed give the same mixture.
"""

from __future__ import annotations

import numpy as np
import torch

from facelab.data.dataset import NEUTRAL, Pair
from facelab.training.data import PairBatches

#: Fewest pairs an expression needs for a map of its own; rarer ones share the map "other".
MIN_PAIRS = 50
OTHER = "other"
#: The maps' ridge, relative to the mean eigenvalue of their features' Gram matrix.
RIDGE = 1e-3
#: The router's Adam steps on mini-batches of BATCH pairs, the rate peaking at PEAK_LR.
STEPS = 4000
BATCH = 256
PEAK_LR = 2e-3
WEIGHT_DECAY = 0.01


def mixture_expressions(pairs: list[Pair]) -> tuple[str, ...]:
    """The mixture's expressions for these training pairs: sorted labels with at least
    :data:`MIN_PAIRS` pairs, then :data:`OTHER` if any pair is left over."""
    counts: dict[str, int] = {}
    for pair in pairs:
        counts[pair.expression] = counts.get(pair.expression, 0) + 1
    kept = sorted(label for label, count in counts.items() if count >= MIN_PAIRS)
    return tuple(kept + [OTHER]) if len(kept) < len(counts) else tuple(kept)


def _coordinates(batches: PairBatches, fusion) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(input coordinates (P, e + i), neutral coordinates (P, e), row of each pair) over the
    batches' distinct pairs, float64 on the CPU."""
    keys = batches.expressive.astype(np.int64) * (int(batches.neutral.max()) + 1) + batches.neutral
    _, first, row_of_pair = np.unique(keys, return_index=True, return_inverse=True)
    expression_dims, identity_dims = fusion.expression_basis.shape[1], fusion.identity_basis.shape[1]
    # Filled in place: chunks kept in a list between each chunk's large temporaries fragment the
    # heap (2 GB more resident at 2,700 identities), and concatenating them doubles the peak.
    features = torch.empty(len(first), expression_dims + identity_dims, dtype=torch.float64)
    targets = torch.empty(len(first), expression_dims, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, len(first), 512):
            x_e, x_n, _ = batches.rows(first[start:start + 512])
            rows = slice(start, start + len(x_e))
            e_u, e_w = fusion.coordinates(x_e)
            features[rows, :expression_dims], features[rows, expression_dims:] = e_u.cpu(), e_w.cpu()
            targets[rows] = fusion.coordinates(x_n)[0].cpu()
    return features, targets, row_of_pair.reshape(-1)


def fit_mixture(batches: PairBatches, fusion, expressions: tuple[str, ...], seed: int = 0,
                input_noise_mm: float = 0.0, steps: int | None = None) -> float:
    """Fit ``fusion.mixture`` (a :class:`~facelab.nn.subspace_fusion.SubspaceFusion` with its bases
    set) on the batches' pairs, whose labels map onto ``expressions`` (from
    :func:`mixture_expressions`). Returns the router's accuracy on the training pairs."""
    steps = STEPS if steps is None else steps
    mixture = fusion.mixture
    device = mixture.expert_weight.device
    features, targets, row_of_pair = _coordinates(batches, fusion)
    index = {label: k for k, label in enumerate(expressions)}
    labels = torch.tensor([index.get(pair.expression, index.get(OTHER, 0)) for pair in batches.pairs])
    pair_targets = targets[torch.from_numpy(row_of_pair)]
    standardised = features[torch.from_numpy(row_of_pair)]
    del features, targets  # distinct pairs x (e + i) and x e, float64: the largest arrays of the fit
    mean, scale = standardised.mean(0), standardised.std(0) + 1e-6
    standardised.sub_(mean).div_(scale)

    # Covariance of unit (1 mm) mesh noise in standardised coordinates: B^T diag(1/std^2) B / scale^2.
    basis = torch.cat([fusion.expression_basis, fusion.identity_basis], dim=1).double().cpu()
    scaled = basis / batches.std.reshape(-1, 1).double().cpu()
    noise = (scaled.T @ scaled) / torch.outer(scale, scale)
    noise_variance = input_noise_mm ** 2 / 3.0  # sigma drawn uniformly from [0, input_noise_mm]

    size = standardised.shape[1]
    weight = torch.zeros(len(expressions), size, pair_targets.shape[1], dtype=torch.float64)
    bias = torch.zeros(len(expressions), pair_targets.shape[1], dtype=torch.float64)
    for k in range(len(expressions)):
        chosen = labels == k
        if not chosen.any():
            continue
        x, y = standardised[chosen], pair_targets[chosen]
        x_mean, y_mean = x.mean(0), y.mean(0)
        centred = x - x_mean
        gram = centred.T @ centred
        if expressions[k] != NEUTRAL:  # a neutral face passes as it came, noise included, like the identity part
            gram = gram + len(x) * noise_variance * noise
        ridge = RIDGE * float(torch.trace(gram)) / size + 1e-12
        weight[k] = torch.linalg.solve(gram + ridge * torch.eye(size, dtype=gram.dtype), centred.T @ (y - y_mean))
        bias[k] = y_mean - x_mean @ weight[k]

    expression_dims = pair_targets.shape[1]
    router = mixture.router
    generator = torch.Generator().manual_seed(seed)
    state = torch.random.get_rng_state()
    try:  # the router's initialisation draws from the global generator: seed it locally
        torch.manual_seed(seed)
        for layer in router:
            if isinstance(layer, torch.nn.Linear):
                layer.reset_parameters()
    finally:
        torch.random.set_rng_state(state)
    router_inputs = standardised[:, :expression_dims].float()
    noise_root = torch.linalg.cholesky(noise[:expression_dims, :expression_dims]
                                       + 1e-9 * torch.eye(expression_dims, dtype=torch.float64)).float()
    parameters = list(router.parameters())
    router.cpu().requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=PEAK_LR, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PEAK_LR, total_steps=max(steps, 1))
    try:
        for _ in range(steps):
            rows = torch.randint(len(labels), (BATCH,), generator=generator)
            inputs = router_inputs[rows]
            if input_noise_mm > 0:
                sigma = torch.rand(BATCH, 1, generator=generator) * input_noise_mm
                inputs = inputs + (sigma * torch.randn(BATCH, expression_dims, generator=generator)) @ noise_root.T
            loss = torch.nn.functional.cross_entropy(router(inputs), labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    finally:
        router.requires_grad_(False).to(device)
    with torch.no_grad():
        mixture.feature_mean.copy_(mean.float())
        mixture.feature_scale.copy_(scale.float())
        mixture.expert_weight.copy_(weight.float())
        mixture.expert_bias.copy_(bias.float())
        accuracy = float((router(router_inputs.to(device)).argmax(1).cpu() == labels).float().mean())
    return accuracy
