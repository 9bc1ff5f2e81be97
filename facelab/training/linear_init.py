"""Linear initialisation: start the paper's network at the best linear neutraliser it can express.

The paper gives no initialisation. From a random one, on 2 CPU cores, the autoencoder spends its
whole budget learning what a PCA already knows (the bundled model of the earlier sessions rebuilt
unseen neutral faces at 0.95 mm after 44 minutes, where 25 linear numbers reach 0.24-0.33 mm).
So by default (``TrainConfig.weight_init``, ``"auto"`` or ``"linear"``) the network starts as the *rank-25 linear
neutraliser* fitted on the training pairs, and training only has to learn what is not linear:

1. A PCA basis of the training faces (``components`` directions, in millimetres, the space the
   error is measured in; the result is rewritten for the network's normalised units), from a
   seeded sample of at most ``basis_samples`` meshes (randomised SVD).
2. Ridge regression on the PCA coefficients of every training pair, stacked the way L_rec pairs
   them: expressive -> its neutral and neutral -> itself (Eq. 6 asks Dec(G(Enc(F_e))) and
   Dec(Enc(F_n)) for the same F_n). The ridge (relative to the mean eigenvalue, 1e-6 to 10) is
   chosen on a fifth of the training subjects held out, then the model is refitted on all: with
   many identities it is tiny, since what tells an expression from a resting face lies in
   low-variance directions (900 SynthFaces identities: 1e-6 gives 0.471 mm on the test subjects,
   1e-3 0.495), while with few a tiny ridge overfits (the default 100: 1.185 mm at 1e-6, 0.864 at
   the 0.1 chosen).
3. Reduced rank: the top ``latent`` principal directions of the fitted values are the code;
   each code coordinate is scaled to unit variance (G, D and R see codes of the usual scale).

This linear model is written into the layers exactly:

* Chebyshev layers pass the coordinates through on their first channels through the T_0 term:
  a signed value v travels as the pair (v, -v), whose ReLUs (v+, v-) give v back as v+ - v-, so
  the biased ReLUs lose nothing. The other channels keep their random initialisation (the
  non-linear capacity), and nothing from them reaches the output yet: their weights into the
  pass-through channels and the encoder's fully connected weights from them start at zero (they
  receive gradients at the first step, like a zero-initialised residual branch).
* The encoder's fully connected layer projects onto the code, the decoder's rebuilds the face
  from it; G starts as the identity through the same (v, -v) pairs; D and R stay random
  (the trainer can first fit R alone to the start's codes, an opt-in measured in
  facelab/training/recognizer_warmup.py).

So before the first step ``Dec(G(Enc(F_e)))`` is the rank-25 linear prediction (a test checks
this). ``weight_init = "random"`` is the plain initialisation; ``"auto"`` falls back to it where the
linear start cannot be written. The linear start needs the fast
Chebyshev layer, no mesh downsampling, and hidden widths of G of at least twice the latent;
otherwise :func:`linear_initialisation` raises :class:`~facelab.errors.FacelabError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facelab.data.dataset import FaceDataset, Normalisation, Pair
from facelab.errors import FacelabError


@dataclass(frozen=True)
class LinearFit:
    """The rank-r linear neutraliser in normalised, flattened vertex space (3n = 3 x vertices).

    ``code = x @ encoder_matrix + encoder_bias`` (r,), ``x = code @ decoder_matrix + decoder_bias``.
    """

    encoder_matrix: np.ndarray  # (3n, r)
    encoder_bias: np.ndarray    # (r,)
    decoder_matrix: np.ndarray  # (r, 3n)
    decoder_bias: np.ndarray    # (3n,)
    components: int
    pairs: int
    ridge: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Normalised faces (B, n, 3) -> the linear model's normalised neutral faces (B, n, 3)."""
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return ((flat @ self.encoder_matrix + self.encoder_bias) @ self.decoder_matrix
                + self.decoder_bias).reshape(np.shape(x)).astype(np.float32)

    def neutralise(self, vertices: np.ndarray, normalisation: Normalisation) -> np.ndarray:
        """Faces (B, n, 3) in mm -> the linear model's neutral faces in mm, through the
        normalisation it was fitted with."""
        return normalisation.denormalise(self.predict(normalisation.normalise(np.asarray(vertices))))


def fit_linear_neutraliser(dataset: FaceDataset, pairs: list[Pair], normalisation: Normalisation, rank: int,
                           components: int = 300, basis_samples: int = 4000, ridge: float | None = None,
                           seed: int = 0, frame=None) -> LinearFit:
    """Fit the rank-``rank`` linear model described in the module docstring (``ridge`` None:
    chosen on held-out subjects). ``frame`` (optional) brings faces into the network's frame:
    ``frame(expressive, neutral)`` -> both moved by the expressive face's alignment, and
    ``frame(faces, None)`` -> each face aligned by itself (tensors (B, n, 3) in mm)."""
    if not pairs:
        raise FacelabError("the linear initialisation needs training pairs.")
    expressive = np.array([p.expressive for p in pairs], dtype=np.int64)
    neutral = np.array([p.neutral for p in pairs], dtype=np.int64)
    meshes = np.unique(np.concatenate([expressive, neutral]))
    rng = np.random.default_rng([seed, 2])
    sample = np.sort(rng.choice(meshes, size=min(basis_samples, len(meshes)), replace=False))

    # Fitted in millimetres, the space the error is measured in (a fit in normalised units would
    # weight each coordinate by 1 / its std: 0.53 against 0.47 mm on SynthFaces' test subjects),
    # then rewritten for the network's normalised inputs and outputs.
    def read(rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(dataset.vertices[rows], dtype=np.float32))

    def flat_mm(rows: np.ndarray) -> torch.Tensor:
        block = read(rows)
        if frame is not None:
            block = frame(block, None)[0]
        return block.reshape(len(rows), -1)

    x = flat_mm(sample)
    mean = x.mean(dim=0)
    k = int(min(components, len(sample) - 1, x.shape[1]))
    if k < 1:
        raise FacelabError(f"the linear initialisation needs at least 2 training meshes, got {len(sample)}.")
    generator = torch.Generator().manual_seed(seed)
    state = torch.random.get_rng_state()
    try:  # svd_lowrank draws from the global generator: seed it locally, leave the run's stream as it was
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        _, _, basis = torch.svd_lowrank(x - mean, q=min(k + 10, len(sample) - 1), niter=3)
    finally:
        torch.random.set_rng_state(state)
    basis = basis[:, :k].double()  # (3n, k)
    del x

    def project(block: torch.Tensor) -> np.ndarray:
        return ((block.reshape(len(block), -1) - mean).double() @ basis).numpy()

    neutral_of = {p.subject: p.neutral for p in pairs}
    subjects = sorted(neutral_of)
    held = held_out_subjects(subjects, seed) if ridge is None else set()
    # The regression's sums, accumulated in chunks (a memory map is never read whole, and no
    # rows x coefficients array is kept): the rows of subjects held out for the ridge apart.
    kept, held_out = _Moments(k), _Moments(k)

    def add(row_subjects: list[str], inputs: np.ndarray, outputs: np.ndarray) -> None:
        out = np.isin(np.array(row_subjects), list(held))
        kept.add(inputs[~out], outputs[~out])
        held_out.add(inputs[out], outputs[out])

    own = np.array([neutral_of[s] for s in subjects], dtype=np.int64)
    if frame is None:
        # PCA coefficients of every mesh the pairs use: a pair's rows are looked up, not re-projected.
        coefficients = np.empty((len(meshes), k), dtype=np.float64)
        for start in range(0, len(meshes), 512):
            rows = meshes[start:start + 512]
            coefficients[start:start + len(rows)] = project(flat_mm(rows))

        def coefficients_of(rows: np.ndarray) -> np.ndarray:
            return coefficients[np.searchsorted(meshes, rows)]

        for start in range(0, len(pairs), 512):
            chunk = slice(start, start + 512)
            add([p.subject for p in pairs[chunk]], coefficients_of(expressive[chunk]), coefficients_of(neutral[chunk]))
        own_coefficients = coefficients_of(own)
        add(subjects, own_coefficients, own_coefficients)
        del coefficients
    else:
        # Aligned, a pair's neutral face moves with its expressive face: coefficients per pair.
        for start in range(0, len(pairs), 512):
            chunk = slice(start, start + 512)
            x_e, x_n = frame(read(expressive[chunk]), read(neutral[chunk]))
            add([p.subject for p in pairs[chunk]], project(x_e), project(x_n))
        for start in range(0, len(own), 512):
            own_coefficients = project(flat_mm(own[start:start + 512]))
            add(subjects[start:start + 512], own_coefficients, own_coefficients)
    if ridge is None:
        ridge = _select_ridge(kept, held_out, rank) if held else RIDGES[len(RIDGES) // 2]
    weights, fitted_mean, directions, spread = _reduced_rank_regression(kept + held_out, ridge, rank)
    scale = np.where(spread > 1e-8 * max(spread.max(), 1e-12), spread, 1.0)

    basis_np, mean_np = basis.numpy(), mean.double().numpy()
    projection = weights[:k] @ directions / scale                       # coefficients -> code
    encoder_matrix = basis_np @ projection                              # (3n, r)
    encoder_bias = (weights[k] - fitted_mean) @ directions / scale - mean_np @ encoder_matrix
    decoder_matrix = (directions * scale).T @ basis_np.T                # (r, 3n)
    decoder_bias = mean_np + fitted_mean @ basis_np.T
    # x_mm = x * std + mean on the way in; (x_mm - mean) / std on the way out.
    std = normalisation.std.reshape(-1).astype(np.float64)
    offset = normalisation.mean.reshape(-1).astype(np.float64)
    encoder_bias = encoder_bias + offset @ encoder_matrix
    encoder_matrix = std[:, None] * encoder_matrix
    decoder_matrix = decoder_matrix / std
    decoder_bias = (decoder_bias - offset) / std
    return LinearFit(encoder_matrix, encoder_bias, decoder_matrix, decoder_bias, k, len(pairs), ridge)


RIDGES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


class _Moments:
    """The sums a least-squares fit of ``outputs ~ [inputs, 1]`` needs, over any number of rows
    (float64): ``gram`` = X^T X and ``cross`` = X^T Y with the intercept column last, the sum of
    squared outputs and the row count."""

    def __init__(self, k: int) -> None:
        self.gram = np.zeros((k + 1, k + 1))
        self.cross = np.zeros((k + 1, k))
        self.square = 0.0
        self.rows = 0

    def add(self, inputs: np.ndarray, outputs: np.ndarray) -> None:
        x = np.c_[inputs, np.ones(len(inputs))]
        self.gram += x.T @ x
        self.cross += x.T @ outputs
        self.square += float(np.sum(np.square(outputs)))
        self.rows += len(x)

    def __add__(self, other: _Moments) -> _Moments:
        total = _Moments(self.cross.shape[1])
        total.gram, total.cross = self.gram + other.gram, self.cross + other.cross
        total.square, total.rows = self.square + other.square, self.rows + other.rows
        return total


def _reduced_rank_regression(moments: _Moments, ridge: float,
                             rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression ``outputs ~ inputs @ weights`` (the intercept is not shrunk; the ridge is
    relative to the mean eigenvalue), then the ``rank`` main directions of the fitted values,
    padded with zero columns when there are fewer: (weights, fitted values' mean, directions, the
    fitted values' standard deviation along each direction)."""
    k = moments.cross.shape[1]
    gram = moments.gram
    penalty = ridge * np.trace(gram[:k, :k]) / k * np.eye(k + 1)
    penalty[k, k] = 0.0
    weights = np.linalg.solve(gram + penalty, moments.cross)  # (k + 1, k)
    mean_input = gram[k] / moments.rows  # the intercept's row holds each column's sum
    fitted_mean = mean_input @ weights
    scatter = weights.T @ (gram - moments.rows * np.outer(mean_input, mean_input)) @ weights
    values, vectors = np.linalg.eigh((scatter + scatter.T) / 2)
    order = np.argsort(values)[::-1][:min(rank, k)]
    # Only directions the fitted values span: the null space's are arbitrary (rounding picks them).
    order = order[values[order] > 1e-12 * max(float(values.max()), 0.0)]
    directions = vectors[:, order]  # (k, r'), r' <= min(r, k)
    if directions.shape[1] < rank:
        # Fewer directions than code numbers (a tiny dataset): the spare code numbers start
        # unused (zero in, zero out) and are left to training.
        directions = np.c_[directions, np.zeros((k, rank - directions.shape[1]))]
    spread = np.sqrt(np.clip(np.einsum("ir,ij,jr->r", directions, scatter, directions), 0, None) / moments.rows)
    return weights, fitted_mean, directions, spread


def held_out_subjects(subjects: list[str], seed: int) -> set[str]:
    """A seeded fifth of ``subjects``, held out to choose the ridge; none below 5 subjects."""
    if len(subjects) < 5:
        return set()
    order = np.random.default_rng([seed, 3]).permutation(len(subjects))
    return {subjects[i] for i in order[: len(subjects) // 5]}


def _select_ridge(kept: _Moments, held_out: _Moments, rank: int) -> float:
    """The ridge (of :data:`RIDGES`) with the lowest squared error on the held-out rows, fitted on
    the kept ones. The PCA basis is orthonormal, so the error of the coefficients is the error of
    the vertices within the basis' span (the part outside it does not depend on the ridge)."""
    k = kept.cross.shape[1]
    errors = []
    for ridge in RIDGES:
        weights, fitted_mean, directions, _ = _reduced_rank_regression(kept, ridge, rank)
        # Prediction = X B: the fitted values projected on the directions about their mean.
        projector = directions @ directions.T
        b = weights @ projector
        b[k] += fitted_mean - fitted_mean @ projector
        squared = np.sum(b * (held_out.gram @ b)) - 2 * np.sum(b * held_out.cross) + held_out.square
        errors.append(squared / (held_out.rows * k))
    return RIDGES[int(np.argmin(errors))]


def linear_initialisation(network, dataset: FaceDataset, pairs: list[Pair], normalisation: Normalisation,
                          seed: int = 0, **fit_options) -> LinearFit:
    """Fit the linear neutraliser and write it into ``network`` (see the module docstring)."""
    from facelab.nn.cheb_conv import MeshChebConv

    config = network.config
    convs = [*network.encoder.convs, *network.decoder.convs]
    if config.downsample:
        raise FacelabError("the linear initialisation works on the full mesh: use --weight-init random with --downsample.")
    if not all(isinstance(conv, MeshChebConv) for conv in convs):
        raise FacelabError("the linear initialisation needs the fast Chebyshev layer: use --weight-init random with --conv pyg.")
    hidden = [conv.out_channels for conv in network.encoder.convs] + [conv.out_channels for conv in network.decoder.convs[:-1]]
    if min(hidden) < 6 or network.decoder.first_channels < 3:
        raise FacelabError("the linear initialisation needs at least 6 channels in every hidden Chebyshev layer.")
    if network.generator is not None and min(config.generator_hidden) < 2 * config.latent:
        raise FacelabError("the linear initialisation needs generator layers at least twice as wide as the latent code.")
    fit = fit_linear_neutraliser(dataset, pairs, normalisation, config.latent, seed=seed, **fit_options)
    with torch.no_grad():
        _initialise_encoder(network.encoder, fit)
        _initialise_decoder(network.decoder, fit)
        if network.generator is not None:
            _initialise_identity_mlp([m for m in network.generator.layers if isinstance(m, torch.nn.Linear)],
                                     config.latent)
    return fit


# The pass-through patterns, on a layer's (in, out) matrix and bias: a Chebyshev layer's T_0
# weights (see _t0) or a linear layer's transposed weight.
def _split_in(matrix: torch.Tensor, bias: torch.Tensor, channels: int) -> None:
    """Outputs 0..2c-1 become (v, -v) pairs of the first ``channels`` inputs (no ReLU before)."""
    matrix[:, :2 * channels] = 0.0
    bias[:2 * channels] = 0.0
    for c in range(channels):
        matrix[c, 2 * c], matrix[c, 2 * c + 1] = 1.0, -1.0


def _pass_pairs(matrix: torch.Tensor, bias: torch.Tensor, channels: int) -> None:
    """Outputs 0..2c-1 become (v, -v) from the ReLU'd input pairs (v+, v-): v = v+ - v-."""
    matrix[:, :2 * channels] = 0.0
    bias[:2 * channels] = 0.0
    for c in range(channels):
        positive, negative = 2 * c, 2 * c + 1
        matrix[positive, positive], matrix[negative, positive] = 1.0, -1.0
        matrix[positive, negative], matrix[negative, negative] = -1.0, 1.0


def _merge_pairs(matrix: torch.Tensor, bias: torch.Tensor, channels: int) -> None:
    """Outputs 0..c-1 become v+ - v- of input pair c; nothing else reaches them yet."""
    matrix[:, :channels] = 0.0
    bias[:channels] = 0.0
    for c in range(channels):
        matrix[2 * c, c], matrix[2 * c + 1, c] = 1.0, -1.0


def _t0(conv, outputs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A Chebyshev layer's T_0 matrix (in, out) and bias, its higher orders into the first
    ``outputs`` channels zeroed: what the pass-through writes then acts on x itself."""
    conv.weight[1:, :, :outputs] = 0.0
    return conv.weight[0], conv.bias


def _initialise_encoder(encoder, fit: LinearFit) -> None:
    coords = encoder.in_channels
    convs = list(encoder.convs)
    _split_in(*_t0(convs[0], 2 * coords), coords)
    for conv in convs[1:]:
        _pass_pairs(*_t0(conv, 2 * coords), coords)
    linear = encoder.to_latent
    features = convs[-1].out_channels
    n = encoder.n_vertices
    matrix = torch.from_numpy(fit.encoder_matrix.T.astype(np.float32)).view(-1, n, coords)  # (r, n, 3)
    weight = linear.weight.view(-1, n, features)
    weight.zero_()
    weight[:, :, 0:2 * coords:2] = matrix     # from v+
    weight[:, :, 1:2 * coords:2] = -matrix    # from v-
    linear.bias.copy_(torch.from_numpy(fit.encoder_bias.astype(np.float32)))


def _initialise_decoder(decoder, fit: LinearFit) -> None:
    convs = list(decoder.convs)
    coords = convs[-1].out_channels
    n, features = decoder.n_vertices, decoder.first_channels
    linear = decoder.from_latent
    weight = linear.weight.view(n, features, -1)  # (n, channels, r)
    bias = linear.bias.view(n, features)
    weight[:, :coords] = torch.from_numpy(fit.decoder_matrix.T.astype(np.float32)).view(n, coords, -1)
    bias[:, :coords] = torch.from_numpy(fit.decoder_bias.astype(np.float32)).view(n, coords)
    _split_in(*_t0(convs[0], 2 * coords), coords)
    for conv in convs[1:-1]:
        _pass_pairs(*_t0(conv, 2 * coords), coords)
    _merge_pairs(*_t0(convs[-1], coords), coords)


def _initialise_identity_mlp(layers: list[torch.nn.Linear], width: int) -> None:
    """An MLP ``Linear, ReLU, ..., Linear`` made the identity on its first ``width`` inputs."""
    first, *middle, last = layers
    _split_in(first.weight.T, first.bias, width)
    for layer in middle:
        _pass_pairs(layer.weight.T, layer.bias, width)
    _merge_pairs(last.weight.T, last.bias, width)
