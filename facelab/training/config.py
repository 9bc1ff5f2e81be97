"""Everything a training run needs, serialised to the run directory's ``config.json``.

Optimiser (the paper names none): Adam (AdamW, no decay by default), lr 3e-4 for Enc, Dec and
G, 1e-3 for R and for the discriminator, a 200-step warm-up and a cosine to zero at the last
step; the encoder's fully connected layer learns at a rate scaled by 1/fan-in. The network
starts as the rank-25 linear neutraliser of the training pairs (``weight_init``). The reasons
and the measurements behind each choice are in facelab/training/schedule.py and
facelab/training/linear_init.py. The reference implementations of this family of mesh
autoencoders (CoMA: SGD 8e-3 with momentum; Neural3DMM and SpiralNet++: Adam 1e-3, decay 0.99
per epoch) start from random weights; ``weight_init="random", lr=1e-3, lr_schedule="exponential"``
is that recipe. Adam is the usual choice for a jointly trained GAN (pix2pix, the paper's [12]).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from facelab.errors import FacelabError
from facelab.data.dataset import DEFAULT_SPLIT_SEED, DEFAULT_TRAIN_FRACTION
from facelab.mesh.alignment import ALIGNMENT_KINDS
from facelab.nn.variants import VARIANTS

#: The values each choice of :class:`TrainConfig` accepts (the command line lists them from here).
CHOICES: dict[str, tuple[str, ...]] = {
    "variant": VARIANTS,
    "alignment": ("auto", *ALIGNMENT_KINDS),
    "laplacian": ("combinatorial", "normalized"),
    "l1_reduction": ("mean", "sum"),
    "lr_schedule": ("cosine", "exponential"),
    "weight_init": ("auto", "linear", "random"),
    "amp": ("off", "bf16"),
}
_CHOICE_NAMES = {"l1_reduction": "L1 reduction", "lr_schedule": "learning-rate schedule",
                 "weight_init": "weight initialisation", "amp": "mixed precision", "laplacian": "Laplacian"}


@dataclass
class LossWeights:
    """The paper's loss weights (Sec. 3): lambda_l2l, lambda_L1, lambda_GAN, lambda_id, lambda_rec."""

    l2l: float = 0.5
    l1: float = 0.4
    gan: float = 1.0
    id: float = 0.05
    rec: float = 2.0


@dataclass
class ExperimentalOptions:
    """Training options that measurements rejected, kept so that those measurements can be repeated.

    Each default is the recipe's, and no run needs another value; docs/method.md gives the
    measurement behind each one. ``facelab train`` offers only the recogniser warm-up
    (``--recognizer-warmup``); the others are set from Python.
    """

    # Before joint training from the linear start (or from --init with a rebuilt recogniser head),
    # fit R alone on the start's codes of this many training pairs (0: off). It helped short runs
    # and hurt the (previous) bundled model's full run; see facelab/training/recognizer_warmup.py.
    recognizer_warmup_samples: int = 0
    recognizer_warmup_steps: int = 600
    # Whether the latent-to-latent losses (L_L1 and the adversarial term, Eq. 2-4) also move the
    # encoder. By default they train G (and D) only, on the encoder's codes taken as given; the
    # encoder is trained end to end through L_rec (Dec(G(Enc(F_e)))) and L_id. Letting the
    # adversarial gradient reach the encoder inflated the codes (std 3 -> 20-40) and stalled the
    # reconstruction at the mean face on SynthFaces (validation error 3.1 mm after 400 steps,
    # against 1.8 mm without L_l2l).
    l2l_trains_encoder: bool = False
    # G's adversarial loss: pix2pix's non-saturating form, or "minimax" (Eq. 3 literally), which
    # changed nothing measurable in 600-step screens.
    gan_loss: str = "non-saturating"
    # L_rec as an L1 in millimetres (each normalised coordinate's error weighted by std / mean std),
    # the error the paper reports; "normalized" weighs a coordinate that barely varies up to 10x more.
    rec_space: str = "mm"

    def validate(self) -> None:
        if self.gan_loss not in ("non-saturating", "minimax"):
            raise FacelabError(f"unknown GAN loss '{self.gan_loss}': expected non-saturating or minimax.")
        if self.rec_space not in ("mm", "normalized"):
            raise FacelabError(f"unknown reconstruction-loss space '{self.rec_space}': expected mm or normalized.")
        if self.recognizer_warmup_samples < 0 or self.recognizer_warmup_steps < 0:
            raise FacelabError("the recogniser's warm-up cannot have a negative number of samples or steps.")


_EXPERIMENTAL = tuple(f.name for f in dataclasses.fields(ExperimentalOptions))


@dataclass
class TrainConfig:
    """A training run's settings: what ``facelab train``, the app's Training panel and Python set.

    The defaults are a plain identity-preserving run (the CLI and the app read theirs from here);
    the bundled model's recipe is :func:`facelab.training.recipe.recommended_config`.
    ``experimental`` holds the options measurements rejected.
    """

    # data
    data: str = "synth"                 # "synth" or a dataset path
    data_format: str | None = None      # force a layout
    data_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"identities": 100, "seed": 0}
    split_seed: int = DEFAULT_SPLIT_SEED
    train_fraction: float = DEFAULT_TRAIN_FRACTION
    validation_fraction: float = 0.1    # of the training subjects, held out to pick the best checkpoint
    # model
    variant: str = "identity-preserving"   # the paper's four stay selectable (docs/neutraliser.md)
    laplacian: str = "combinatorial"    # the paper's L = D - A; "normalized" is CoMA's code
    K: int = 6
    latent: int = 25
    conv: str = "fast"                  # "fast" (facelab's sparse layer) or "pyg" (reference)
    # CoMA-style mesh downsampling for large templates: one factor per pooling stage, e.g.
    # [4, 4, 4, 4]; empty (default) is the paper's architecture on the full mesh. See
    # facelab/nn/mesh_sampling.py and docs/scale-out.md.
    downsample: list[int] = field(default_factory=list)
    # How faces are brought into the template's frame before the network (and the prediction
    # back): "similarity" fits scale, rotation and translation on the vertices the training
    # expressions move least (facelab/mesh/alignment.py); "canonical" then moves each face back
    # to where faces of its shape sat in the training data (facelab/mesh/frame_correction.py);
    # "none" feeds them as they are; "auto" fits both of the first two and keeps the one a linear
    # check on the validation subjects prefers (facelab/training/alignment_choice.py).
    alignment: str = "auto"
    # identity-preserving: the columns of its expression and identity subspaces
    # (facelab/nn/subspace_fusion.py), fitted on the training pairs at the start of a run.
    expression_dims: int = 50
    identity_dims: int = 200
    # identity-preserving: inside the expression subspace, start from a ridge map of the input and
    # let learned gates move each direction towards the decoder (facelab/nn/subspace_fusion.py).
    fusion_ridge: bool = False
    # identity-preserving: the same, with one ridge map per training expression and a classifier
    # of the input's expression weighing them (facelab/nn/expression_mixture.py).
    fusion_mixture: bool = False
    # identity-preserving with the mixture: each training subject also gives this many blends of two
    # of its expressions (their displacements summed), learned as one more expression (0: none).
    mixture_blends: int = 0
    # Each training subject's neutral face is also trained as an "expression" of itself this many
    # times (0: the paper's pairs only), so that a neutral face in comes back unchanged.
    neutral_pairs: int = 0
    # Gaussian noise added to each training input face, its standard deviation drawn per face
    # uniformly from 0 to this many mm (0: none), so that a scanner's noise does not move the
    # prediction; the target stays the clean neutral face.
    input_noise_mm: float = 0.0
    # How the network starts (the paper gives no initialisation): "linear" starts it as the rank-25
    # linear neutraliser of the training pairs, written exactly into the layers; "random" is the
    # plain initialisation; "auto" is linear where the architecture allows it (the fast Chebyshev
    # layer, no downsampling), else random. See facelab/training/linear_init.py.
    weight_init: str = "auto"
    linear_ridge: float | None = None   # the linear start's ridge; None: chosen on held-out training subjects
    # optimisation
    epochs: int = 30                    # 0: the start only (its fits), saved as best and last
    batch_size: int = 16
    lr: float = 3e-4                    # Enc, Dec and G; see the module docstring
    recognizer_lr: float = 1e-3         # R starts random, like D
    generator_lr: float | None = None   # G's own rate (None: lr); see facelab/training/schedule.py
    lr_schedule: str = "cosine"         # or "exponential" (x lr_decay per epoch); facelab/training/schedule.py
    warmup_steps: int = 200             # linear warm-up of the cosine schedule
    lr_decay: float = 0.99
    # The encoder's fully connected layer (fan-in n x 32) learns at lr x min(1, this / fan-in); 0 turns
    # the scaling off. See facelab/training/schedule.py.
    wide_layer_lr_fan_in: int = 4096
    discriminator_lr: float = 1e-3
    weight_decay: float = 0.0           # decoupled (AdamW) weight decay of the network, not of D
    weights: LossWeights = field(default_factory=LossWeights)
    # How |.|_1 in Eq. 2 and 6 reduces: "mean" (mean absolute error over elements: the weights
    # do not depend on the mesh or latent size) or "sum" (the L1 norm of each sample, as written,
    # averaged over the batch: L_rec then outweighs L_GAN and L_id by the mesh's n x 3).
    l1_reduction: str = "mean"
    # run
    seed: int = 0
    deterministic: bool = False
    device: str = "cpu"
    num_threads: int | None = None      # torch threads; the GUI leaves one core for itself
    preview_every: int = 50             # steps between preview predictions (0: never)
    preview_index: int = 0              # which test pair the preview shows
    tensorboard: bool = True            # log to TensorBoard when it is installed
    checkpoint_minutes: float = 10.0    # minutes between saves of 'last' inside an epoch (0: at epoch ends only)
    amp: str = "off"                    # "bf16": mixed precision (facelab/training/amp.py)
    num_workers: int = 0                # DataLoader processes reading batches (0: in the training process)
    # options that measurements rejected, kept to repeat those measurements
    experimental: ExperimentalOptions = field(default_factory=ExperimentalOptions)

    def validate(self) -> TrainConfig:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise FacelabError(f"unknown {_CHOICE_NAMES.get(name, name)} '{getattr(self, name)}': expected one of "
                                   f"{', '.join(allowed)}.")
        if self.expression_dims < 1 or self.identity_dims < 0 or self.neutral_pairs < 0:
            raise FacelabError("the expression subspace needs at least 1 dimension, and the identity subspace and "
                               "the neutral pairs cannot be negative.")
        if not 0 <= self.checkpoint_minutes < float("inf"):
            raise FacelabError(f"the minutes between checkpoints must be 0 (at epoch ends only) or more, "
                               f"got {self.checkpoint_minutes}.")
        if self.fusion_ridge and self.variant != "identity-preserving":
            raise FacelabError(f"--fusion-ridge belongs to the identity-preserving variant, not '{self.variant}'.")
        if self.fusion_mixture and self.variant != "identity-preserving":
            raise FacelabError(f"--fusion-mixture belongs to the identity-preserving variant, not '{self.variant}'.")
        if self.mixture_blends < 0 or (self.mixture_blends and not self.fusion_mixture):
            raise FacelabError("--mixture-blends is a number of blends per subject for --fusion-mixture, "
                               f"got {self.mixture_blends}" + ("" if self.fusion_mixture else " without it") + ".")
        if self.fusion_mixture and self.fusion_ridge:
            raise FacelabError("--fusion-ridge and --fusion-mixture are two starts inside the expression subspace: "
                               "choose one.")
        if not 0 <= self.input_noise_mm < float("inf"):
            raise FacelabError(f"the input noise must be zero or a positive number of mm, got {self.input_noise_mm}.")
        if self.epochs < 0:
            raise FacelabError(f"epochs cannot be negative, got {self.epochs} (0: the start only).")
        for name in ("batch_size", "K"):
            if getattr(self, name) < 1:
                raise FacelabError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}.")
        if self.linear_ridge is not None and not self.linear_ridge >= 0:
            raise FacelabError(f"the linear start's ridge cannot be negative, got {self.linear_ridge}.")
        if self.num_workers < 0:
            raise FacelabError(f"the number of data workers cannot be negative, got {self.num_workers}.")
        self.downsample = [int(factor) for factor in self.downsample]
        if any(factor < 2 for factor in self.downsample):
            raise FacelabError(f"each downsampling factor must be at least 2, got {self.downsample}.")
        if self.generator_lr is not None and not self.generator_lr >= 0:
            raise FacelabError(f"the generator's learning rate must be zero or positive, got {self.generator_lr}.")
        if not self.lr > 0:
            raise FacelabError(f"the learning rate must be positive, got {self.lr}.")
        for name, weight in dataclasses.asdict(self.weights).items():
            if not 0 <= weight < float("inf"):
                raise FacelabError(f"the loss weight {name} must be zero or positive and finite, got {weight}.")
        self.experimental.validate()
        return self

    @property
    def linear_start(self) -> bool:
        """Whether the run starts from the linear initialisation (``weight_init`` resolved)."""
        if self.weight_init == "auto":
            return not self.downsample and self.conv == "fast"
        return self.weight_init == "linear"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from :meth:`to_dict`'s output, or from a run or checkpoint of any earlier
        facelab: keys it no longer knows are ignored, and the experimental options, saved at the
        top level before they had a section of their own, are read from there too."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values.setdefault("alignment", "none")  # a run saved before alignment existed trained without it
        if isinstance(values.get("weights"), dict):
            values["weights"] = LossWeights(**values["weights"])
        experimental = {key: data[key] for key in _EXPERIMENTAL if key in data}
        if isinstance(data.get("experimental"), dict):
            experimental.update((key, value) for key, value in data["experimental"].items() if key in _EXPERIMENTAL)
        values["experimental"] = ExperimentalOptions(**experimental)
        return cls(**values)


def architecture_of(meta: dict) -> dict[str, Any]:
    """The :class:`TrainConfig` fields that fine-tuning a checkpoint keeps, from its meta: the
    variant and, for identity-preserving, which start inside the expression subspace it uses (the
    mixture is fitted again on the new data's expressions, with as many blends per subject), and
    what its training pairs were made of (neutral pairs, input noise), so that fine-tuning does not
    unlearn what they taught (a neutral face in comes back unchanged, noise does not move it).

    The network's description (``meta["network"]``) is where a checkpoint records its
    architecture; older checkpoints also kept the variant at the top level, read when the
    network's lacks it."""
    network, trained = meta.get("network") or {}, meta.get("train_config") or {}
    return {"variant": network.get("variant") or meta.get("variant") or "full",
            "fusion_ridge": bool(network.get("fusion_ridge", False)),
            "fusion_mixture": bool(network.get("fusion_expressions")),
            "mixture_blends": int(trained.get("mixture_blends", 0)) if network.get("fusion_expressions") else 0,
            "neutral_pairs": int(trained.get("neutral_pairs", 0)),
            "input_noise_mm": float(trained.get("input_noise_mm", 0.0))}
