"""Fit the expression mixture of the ``identity-preserving`` fusion at the start of a run.

The mixture (:class:`facelab.nn.expression_mixture.ExpressionMixture`) works on 250 numbers per
face rather than on the mesh, so it is fitted on its own before the network trains: every
training pair is projected once into the fusion's subspaces, then

* each expression's map is a ridge regression, in closed form, from the input's standardised
  coordinates to the neutral face's ``U`` coordinates over that expression's pairs, shrunk towards
  the one map of all pairs;
* the router is a classifier of the pair's expression from the input's ``U`` coordinates: a small
  network trained with Adam on the cross-entropy, or the linear discriminant.

How far each map is shrunk, and which router, are chosen on held-out subjects: maps and routers
are fitted on four fifths of the training subjects and the router (of :data:`ROUTERS`) and
shrinkage (of :data:`SHRINKAGE`) whose mixture predicts the other fifth best are kept, then
everything is fitted again on all of them. The ``whitened`` router reads the coordinates after
dividing out how faces of one expression vary (the pooled within-expression covariance, mostly
the people's own shape inside ``U``), folded into its first layer; the ``discriminant`` router is
the linear discriminant on the same covariance, each expression a Gaussian about its mean, fitted
in closed form and held exactly by the same network (each hidden unit paired with its negative),
so a model holds one router network whichever is chosen. With few subjects the network learns the
training people's faces rather than their expressions and the discriminant does best (fitted on
63 SynthFaces subjects it reads 57% of unseen people's pairs right, the whitened network 46%, the
plain one 38%: docs/results/router_screen.json); with many, a network can predict better (on
SynthFaces' 2,700 identities the recipe's fit chose the whitened one).
"Best" is validation's measure, the mean per-vertex distance in mm (the coordinates are
normalised per vertex, so a squared error on them would weigh still vertices most).
Where expressions are few, distinct and well sampled (SynthFaces) the maps stay apart; where
each has few pairs for its features (ICT-FaceKit's 167 labels, 53 shapes at three intensities and
combinations, about 80 pairs each), they come together instead of fitting noise.

Expressions are the training pairs' labels (a subject's own neutral face, trained with
``neutral_pairs``, is the expression ``neutral``). Labels with fewer than :data:`MIN_PAIRS` pairs
share one map, ``other``. With ``blends``, each subject also gives that many *blends*, two of its
expressions at once (their displacements from the neutral face summed, in the subspaces'
coordinates, which are linear in the face), as the expression ``blend`` with a map of its own: a
face doing two things at once is not one expression, and without them the router splits it
between two maps that each undo only their own part.

The run's ``input_noise_mm`` enters both: the maps' normal equations get the expected noise
covariance (exact for zero-mean noise), so that no map amplifies a scanner's noise, and the router
trains on noisy coordinates, drawn with the covariance that mesh noise has in those coordinates.
The neutral map is left without it: a face with no expression should come back as it is, not
smoothed. Seeded: the same pairs and seed give the same mixture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from facelab.data.dataset import NEUTRAL, Pair
from facelab.training.data import PairBatches
from facelab.training.linear_init import held_out_subjects

#: Fewest pairs an expression needs for a map of its own; rarer ones share the map "other".
MIN_PAIRS = 50
OTHER = "other"
BLEND = "blend"
#: The maps' ridge, relative to the mean eigenvalue of their features' Gram matrix.
RIDGE = 1e-3
#: Candidate shrinkages of each expression's map towards the map of all pairs, in pairs' worth
#: (a prior as strong as that many pairs of average spread): 0 fits each expression alone, inf
#: gives every expression the shared map (each keeps its own offset).
SHRINKAGE = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, float("inf"))
#: The routers tried: a network on the standardised coordinates, or on them whitened within
#: expressions, or the linear discriminant (each expression a Gaussian with the pooled covariance).
ROUTERS = ("plain", "whitened", "discriminant")
#: How far the within-expression covariance is pulled towards its mean eigenvalue before whitening.
WHITENING_SHRINKAGE = 0.05
#: Held-out pairs the shrinkage is judged on (a seeded sample where there are more).
HELD_OUT_PAIRS = 2048
#: The router's Adam steps on mini-batches of BATCH pairs, the rate peaking at PEAK_LR.
STEPS = 4000
BATCH = 256
PEAK_LR = 2e-3
WEIGHT_DECAY = 0.01


def mixture_expressions(pairs: list[Pair], blends: bool = False) -> tuple[str, ...]:
    """The mixture's expressions for these training pairs: sorted labels with at least
    :data:`MIN_PAIRS` pairs, then :data:`OTHER` if any pair is left over, then :data:`BLEND` with
    ``blends``."""
    counts: dict[str, int] = {}
    for pair in pairs:
        counts[pair.expression] = counts.get(pair.expression, 0) + 1
    kept = sorted(label for label, count in counts.items() if count >= MIN_PAIRS and label != BLEND)
    extra = [OTHER] if len(kept) < len(counts) else []
    return tuple(kept + extra + ([BLEND] if blends else []))


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


def _blends(batches: PairBatches, fusion, features: torch.Tensor, targets: torch.Tensor, row_of_pair: np.ndarray,
            per_subject: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``per_subject`` blends of each subject with two expressions of different labels: input
    coordinates f_a + f_b - f_n (P, e + i), the neutral face's ``U`` coordinates (P, e), and
    each blend's subject; seeded."""
    rows_of: dict[str, dict[int, str]] = {}
    neutral_pair: dict[str, int] = {}
    for index, pair in enumerate(batches.pairs):
        neutral_pair.setdefault(pair.subject, index)
        if pair.expression not in (NEUTRAL, BLEND) and pair.expressive != pair.neutral:
            rows_of.setdefault(pair.subject, {})[int(row_of_pair[index])] = pair.expression
    rng = np.random.default_rng([seed, 2])
    chosen: list[tuple[str, int, int]] = []
    for subject in sorted(rows_of):
        rows = sorted(rows_of[subject])
        if len({rows_of[subject][r] for r in rows}) < 2:
            continue
        count = 0
        while count < per_subject:
            a, b = rng.choice(rows, size=2, replace=False)
            if rows_of[subject][a] != rows_of[subject][b]:
                chosen.append((subject, int(a), int(b)))
                count += 1
    subjects = sorted({subject for subject, _, _ in chosen})
    # The neutral face as an input, in both subspaces: read from any pair of its subject.
    neutral = {}
    with torch.no_grad():
        for start in range(0, len(subjects), 512):
            names = subjects[start:start + 512]
            _, x_n, _ = batches.rows(np.array([neutral_pair[name] for name in names]))
            u, w = fusion.coordinates(x_n)
            for name, row in zip(names, torch.cat([u, w], dim=1).cpu().double()):
                neutral[name] = row
    a = torch.tensor([c[1] for c in chosen], dtype=torch.long)
    b = torch.tensor([c[2] for c in chosen], dtype=torch.long)
    base = torch.stack([neutral[c[0]] for c in chosen]) if chosen else torch.empty(0, features.shape[1],
                                                                                   dtype=features.dtype)
    return features[a] + features[b] - base, targets[a], [c[0] for c in chosen]


@dataclass(frozen=True)
class MixtureFit:
    """What :func:`fit_mixture` chose and measured."""

    accuracy: float                 # the router's accuracy on the training pairs
    shrinkage: float | None         # the chosen entry of SHRINKAGE (None: too few subjects to hold any out)
    held_out_errors: dict[float, float] = field(default_factory=dict)  # shrinkage -> held-out error (mm), chosen router
    router: str = "plain"           # the chosen entry of ROUTERS ("plain" where none was held out)
    router_errors: dict[str, float] = field(default_factory=dict)  # router -> its best held-out error (mm)

    def to_dict(self) -> dict:
        """What the checkpoint records of the fit (``mixture_fit``); a shrinkage giving every
        expression the shared map is written ``"inf"``."""
        shrinkage = "inf" if self.shrinkage == float("inf") else self.shrinkage
        return {"router": self.router, "router_held_out_mm": dict(self.router_errors), "shrinkage": shrinkage,
                "training_accuracy": self.accuracy}

    def describe(self) -> str:
        """One line for the run's log."""
        if self.shrinkage is None:
            return f"expression maps each their own, {self.router} router (too few subjects to choose on)"
        maps = ("all the shared one" if self.shrinkage == float("inf") else
                f"shrunk towards the shared one by {self.shrinkage:g} pairs' worth" if self.shrinkage else "each their own")
        return f"expression maps {maps}, {self.router} router (both chosen on held-out subjects)"


def fit_mixture(batches: PairBatches, fusion, expressions: tuple[str, ...], seed: int = 0,
                input_noise_mm: float = 0.0, steps: int | None = None, blends: int = 0) -> MixtureFit:
    """Fit ``fusion.mixture`` (a :class:`~facelab.nn.subspace_fusion.SubspaceFusion` with its bases
    set) on the batches' pairs, whose labels map onto ``expressions`` (from
    :func:`mixture_expressions`), choosing the maps' shrinkage and the router on held-out subjects; with
    ``blends`` (``expressions`` then ends with :data:`BLEND`), on that many blends per subject too."""
    steps = STEPS if steps is None else steps
    mixture = fusion.mixture
    device = mixture.expert_weight.device
    features, targets, row_of_pair = _coordinates(batches, fusion)
    index = {label: k for k, label in enumerate(expressions)}
    labels = [index.get(pair.expression, index.get(OTHER, 0)) for pair in batches.pairs]
    subjects = [pair.subject for pair in batches.pairs]
    blend_features, blend_targets = features[:0], targets[:0]
    if blends:
        blend_features, blend_targets, blend_subjects = _blends(batches, fusion, features, targets, row_of_pair,
                                                                blends, seed)
        labels += [index[BLEND]] * len(blend_subjects)
        subjects += blend_subjects
    labels = torch.tensor(labels)
    rows = torch.from_numpy(row_of_pair)
    # Filled in place rather than concatenated: these are the largest arrays of the fit.
    pair_targets = torch.cat([targets[rows], blend_targets])
    standardised = torch.empty(len(labels), features.shape[1], dtype=features.dtype)
    torch.index_select(features, 0, rows, out=standardised[:len(rows)])
    standardised[len(rows):] = blend_features
    del features, targets, blend_features, blend_targets
    mean, scale = standardised.mean(0), standardised.std(0) + 1e-6
    standardised.sub_(mean).div_(scale)

    # Covariance of unit (1 mm) mesh noise in standardised coordinates: B^T diag(1/std^2) B / scale^2.
    basis = torch.cat([fusion.expression_basis, fusion.identity_basis], dim=1).double().cpu()
    scaled = basis / batches.std.reshape(-1, 1).double().cpu()
    noise = (scaled.T @ scaled) / torch.outer(scale, scale)
    noise_variance = input_noise_mm ** 2 / 3.0  # sigma drawn uniformly from [0, input_noise_mm]
    router_inputs = standardised[:, :pair_targets.shape[1]].float()
    noise_root = torch.linalg.cholesky(noise[:router_inputs.shape[1], :router_inputs.shape[1]]
                                       + 1e-9 * torch.eye(router_inputs.shape[1], dtype=torch.float64)).float()
    router = mixture.router
    router.cpu()
    try:
        held_out = held_out_subjects(sorted(set(subjects)), seed)
        shrinkage, errors, chosen_router, router_errors = None, {}, "plain", {}
        if held_out:
            kept = torch.tensor([subject not in held_out for subject in subjects])
            held = torch.nonzero(~kept).flatten()
            if len(held) > HELD_OUT_PAIRS:
                sample = torch.randperm(len(held), generator=torch.Generator().manual_seed(seed))[:HELD_OUT_PAIRS]
                held = held[sample.sort().values]
            # U's coordinates back to millimetres per vertex coordinate.
            to_mm = fusion.expression_basis.double().cpu() * batches.std.reshape(-1, 1).double().cpu()
            maps = _MapFit(standardised, pair_targets, labels, expressions, noise, noise_variance, kept)
            held_features, held_targets = standardised[held], pair_targets[held]
            fitted_maps = {candidate: maps.fit(candidate) for candidate in SHRINKAGE}  # the same for every router
            by_router = {}
            for kind in _routers_for(router):
                _fit_router_of(kind, router, router_inputs[kept], labels[kept], noise, noise_variance, noise_root,
                               input_noise_mm, steps, seed)
                with torch.no_grad():
                    probabilities = torch.softmax(router(router_inputs[held]), dim=1).double()
                by_router[kind] = {}
                for candidate, (weight, bias) in fitted_maps.items():
                    predicted = _mixed(held_features, probabilities, weight, bias)
                    by_router[kind][candidate] = _mean_vertex_error_mm(predicted - held_targets, to_mm)
                router_errors[kind] = min(by_router[kind].values())
            chosen_router = min(router_errors, key=router_errors.get)
            errors = by_router[chosen_router]
            shrinkage = min(errors, key=errors.get)
        everything = torch.ones_like(labels, dtype=torch.bool)
        maps = _MapFit(standardised, pair_targets, labels, expressions, noise, noise_variance, everything)
        weight, bias = maps.fit(shrinkage or 0.0)
        _fit_router_of(chosen_router, router, router_inputs, labels, noise, noise_variance, noise_root,
                       input_noise_mm, steps, seed)
    finally:
        router.requires_grad_(False).to(device)
    with torch.no_grad():
        mixture.feature_mean.copy_(mean.float())
        mixture.feature_scale.copy_(scale.float())
        mixture.expert_weight.copy_(weight.float())
        mixture.expert_bias.copy_(bias.float())
        accuracy = float((router(router_inputs.to(device)).argmax(1).cpu() == labels).float().mean())
    return MixtureFit(accuracy, shrinkage, errors, chosen_router, router_errors)


class _MapFit:
    """Each expression's ridge map from standardised input coordinates to the neutral face's ``U``
    coordinates over the pairs in ``rows``, shrunk towards the map of all of them. The moments are
    gathered once; each shrinkage then costs one small solve per expression."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
                 expressions: tuple[str, ...], noise: torch.Tensor, noise_variance: float, rows: torch.Tensor) -> None:
        self.size = features.shape[1]
        self.expressions = expressions
        self.moments = {}
        for k in range(len(expressions)):
            index = torch.nonzero(rows & (labels == k)).flatten()
            if len(index):
                # A neutral face passes as it came, noise included, like the identity part.
                noisy = expressions[k] != NEUTRAL
                self.moments[k] = _moments(features[index], targets[index], noise, noise_variance if noisy else 0.0)
        self.pooled = None
        if self.moments:
            # The shared map, from the same sums: every expression's pairs about their overall mean.
            count = sum(m[0] for m in self.moments.values())
            x_mean = sum(m[0] * m[1] for m in self.moments.values()) / count
            y_mean = sum(m[0] * m[2] for m in self.moments.values()) / count
            gram = sum(m[3] + m[0] * torch.outer(m[1] - x_mean, m[1] - x_mean) for m in self.moments.values())
            cross = sum(m[4] + m[0] * torch.outer(m[1] - x_mean, m[2] - y_mean) for m in self.moments.values())
            self.spread = float(torch.trace(gram)) / (count * self.size)  # one pair's average eigenvalue
            eye = torch.eye(self.size, dtype=torch.float64)
            self.pooled = torch.linalg.solve(gram + RIDGE * self.spread * count * eye, cross)

    def fit(self, shrinkage: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (K, f, e), bias (K, e)) with this shrinkage (expressions without pairs: zeros)."""
        outputs = self.pooled.shape[1] if self.pooled is not None else 0
        weight = torch.zeros(len(self.expressions), self.size, outputs, dtype=torch.float64)
        bias = torch.zeros(len(self.expressions), outputs, dtype=torch.float64)
        eye = torch.eye(self.size, dtype=torch.float64)
        for k, (count, x_mean, y_mean, gram, cross) in self.moments.items():
            if shrinkage == float("inf"):
                weight[k] = self.pooled
            else:
                ridge = RIDGE * float(torch.trace(gram)) / self.size + 1e-12
                prior = shrinkage * self.spread
                weight[k] = torch.linalg.solve(gram + (ridge + prior) * eye, cross + prior * self.pooled)
            bias[k] = y_mean - x_mean @ weight[k]
        return weight, bias


def _moments(x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, noise_variance: float):
    """(pairs, x mean, y mean, centred Gram plus the expected noise covariance, centred cross moment)."""
    x_mean, y_mean = x.mean(0), y.mean(0)
    centred = x - x_mean
    gram = centred.T @ centred + len(x) * noise_variance * noise
    return len(x), x_mean, y_mean, gram, centred.T @ (y - y_mean)


def _mixed(features: torch.Tensor, probabilities: torch.Tensor, weight: torch.Tensor,
           bias: torch.Tensor) -> torch.Tensor:
    """The mixture's prediction (P, e) under the router's probabilities (P, K); the maps of
    expressions the router all but rules out for a pair are skipped for it."""
    out = torch.zeros(len(features), weight.shape[2], dtype=torch.float64)
    for k in range(weight.shape[0]):
        rows = probabilities[:, k] > 1e-4
        if rows.any():
            out[rows] += probabilities[rows, k:k + 1] * (features[rows] @ weight[k] + bias[k])
    return out


def _mean_vertex_error_mm(difference: torch.Tensor, to_mm: torch.Tensor) -> float:
    """Mean per-vertex distance (mm) of coordinate differences (P, e) in ``U``."""
    total = 0.0
    for start in range(0, len(difference), 256):
        vertices = (difference[start:start + 256] @ to_mm.T).reshape(-1, to_mm.shape[0] // 3, 3)
        total += float(vertices.norm(dim=2).mean(dim=1).sum())
    return total / max(len(difference), 1)


def _fit_router_of(kind: str, router: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                   noise: torch.Tensor, noise_variance: float, noise_root: torch.Tensor, input_noise_mm: float,
                   steps: int, seed: int) -> None:
    """Fit the router of this kind (of :data:`ROUTERS`) on these inputs: a ``whitened`` one trains
    on the inputs whitened within expressions, the whitening then folded into its first layer; a
    ``discriminant`` one is set, in closed form, to the linear discriminant on the same covariance.
    Each takes the standardised coordinates."""
    if kind == "plain":
        _fit_router(router, inputs, labels, noise_root, input_noise_mm, steps, seed)
        return
    dims = inputs.shape[1]
    whitening = _within_expression_whitening(inputs.double(), labels, noise[:dims, :dims] * noise_variance)
    if kind == "discriminant":
        _set_linear_router(router, *_linear_discriminant(inputs.double(), labels, whitening, router[-1].out_features))
        return
    _fit_router(router, (inputs.double() @ whitening.T).float(), labels, (whitening @ noise_root.double()).float(),
                input_noise_mm, steps, seed)
    with torch.no_grad():
        router[0].weight.copy_((router[0].weight.double() @ whitening).float())


def _within_expression_whitening(inputs: torch.Tensor, labels: torch.Tensor, noise_covariance: torch.Tensor) -> torch.Tensor:
    """The inverse square root (d, d) of the inputs' pooled covariance about their expression's
    mean, plus the expected noise, pulled :data:`WHITENING_SHRINKAGE` of the way towards its mean
    eigenvalue (so that no direction few pairs span is blown up)."""
    dims = inputs.shape[1]
    residual = inputs - _expression_means(inputs, labels)[1][labels]
    covariance = residual.T @ residual / max(len(inputs), 1) + noise_covariance
    covariance = ((1 - WHITENING_SHRINKAGE) * covariance
                  + WHITENING_SHRINKAGE * torch.trace(covariance) / dims * torch.eye(dims, dtype=torch.float64))
    values, vectors = torch.linalg.eigh(covariance)
    if float(values.max()) <= 0.0:  # every expression a single point: nothing to whiten
        return torch.eye(dims, dtype=torch.float64)
    return vectors @ torch.diag(values.clamp(min=1e-12 * float(values.max())).rsqrt()) @ vectors.T


def _routers_for(router: torch.nn.Sequential) -> tuple[str, ...]:
    """The :data:`ROUTERS` this router network can hold."""
    return tuple(kind for kind in ROUTERS if kind != "discriminant" or _holds_linear(router))


def _holds_linear(router: torch.nn.Sequential) -> bool:
    """Whether the router can hold a linear map exactly: its hidden layers twice as wide as its input."""
    return 2 * router[0].in_features <= router[0].out_features


def _expression_means(inputs: torch.Tensor, labels: torch.Tensor, experts: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Each expression's pair count (K,) and mean input (K, d), K at least ``experts`` (zeros for
    an expression without pairs)."""
    counts = torch.bincount(labels, minlength=experts).double()
    means = torch.zeros(len(counts), inputs.shape[1], dtype=inputs.dtype).index_add_(0, labels, inputs)
    return counts, means / counts.clamp(min=1)[:, None]


def _linear_discriminant(inputs: torch.Tensor, labels: torch.Tensor, whitening: torch.Tensor,
                         experts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear discriminant's logits ``x @ weight.T + bias`` (weight (K, d), bias (K,)): the log
    posterior of each expression, a Gaussian about its mean with the pooled covariance (whitened to
    the identity by ``whitening``), weighed by its share of the pairs. Expressions without pairs
    get no chance (a bias of -1e4)."""
    counts, means = _expression_means(inputs, labels, experts)
    whitened = means @ whitening.T
    weight = whitened @ whitening  # (W x) . (W m) = x . (W^T W m), W symmetric
    bias = -0.5 * (whitened * whitened).sum(1) + torch.log(counts.clamp(min=1) / counts.sum())
    bias[counts == 0] = -1e4
    return weight, bias


def _set_linear_router(router: torch.nn.Sequential, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Make the router (Linear, SiLU, Linear, SiLU, Linear) compute ``x @ weight.T + bias`` exactly.
    Each hidden layer carries the input as pairs of units (u, -u), since silu(u) - silu(-u) = u, so
    a model holds a linear router in the same network (and checkpoint) as the others."""
    first, second, last = (layer for layer in router if isinstance(layer, torch.nn.Linear))
    dims = first.in_features
    if not _holds_linear(router):
        raise ValueError(f"a linear router of {dims} inputs needs {2 * dims} hidden units, "
                         f"the router has {first.out_features}")
    eye = torch.eye(dims)
    with torch.no_grad():
        for layer in (first, second, last):
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[:dims] = eye
        first.weight[dims:2 * dims] = -eye
        second.weight[:dims, :dims], second.weight[:dims, dims:2 * dims] = eye, -eye
        second.weight[dims:2 * dims, :dims], second.weight[dims:2 * dims, dims:2 * dims] = -eye, eye
        last.weight[:, :dims] = weight.float()
        last.weight[:, dims:2 * dims] = -weight.float()
        last.bias.copy_(bias.float())


def _fit_router(router: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, noise_root: torch.Tensor,
                input_noise_mm: float, steps: int, seed: int) -> None:
    """Train the router afresh (seeded) on these pairs' expression coordinates and labels."""
    generator = torch.Generator().manual_seed(seed)
    state = torch.random.get_rng_state()
    try:  # the router's initialisation draws from the global generator: seed it locally
        torch.manual_seed(seed)
        for layer in router:
            if isinstance(layer, torch.nn.Linear):
                layer.reset_parameters()
    finally:
        torch.random.set_rng_state(state)
    dims = inputs.shape[1]
    parameters = list(router.parameters())
    router.requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=PEAK_LR, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PEAK_LR, total_steps=max(steps, 1))
    try:
        for _ in range(steps):
            rows = torch.randint(len(labels), (BATCH,), generator=generator)
            batch = inputs[rows]
            if input_noise_mm > 0:
                sigma = torch.rand(BATCH, 1, generator=generator) * input_noise_mm
                batch = batch + (sigma * torch.randn(BATCH, dims, generator=generator)) @ noise_root.T
            loss = torch.nn.functional.cross_entropy(router(batch), labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    finally:
        router.requires_grad_(False)
