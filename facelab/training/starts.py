"""How a training run starts: afresh, from its own last checkpoint, or from a trained model.

:meth:`Trainer.prepare <facelab.training.trainer.Trainer.prepare>` asks its start, in this order,
for the subject split, the frame the faces are seen in (template, alignment, normalisation), the
network's first weights, the per-process batch, and last what a stopped run was in the middle of
(optimisers, schedule, position). What each start loads, and what is fitted on the training pairs:

* :class:`FreshStart` loads nothing. It fits the alignment and the normalisation, the linear
  start (``weight_init``), and the identity-preserving subspaces and maps.
* :class:`FineTuning` (``--init``) loads the model's template, normalisation, alignment (when it
  records one) and the weights that fit the new run: not a recogniser head for other subjects nor
  maps of other expressions. It fits what that leaves out.
* :class:`ResumedRun` (``--resume``) loads everything from the run's ``config.json`` and ``last``
  checkpoint: settings, split, frame, weights, optimisers, schedule and position. It fits nothing.

A checkpoint's template is kept because faces are aligned to it, its normalisation and subspaces
were taken in its frame, and a downsampling hierarchy is decimated from its shape. The opt-in
recogniser warm-up (``ExperimentalOptions``) runs when a start leaves the recogniser new.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from facelab.data.dataset import DatasetSplit, FaceDataset, Normalisation, Pair
from facelab.errors import FacelabError
from facelab.mesh.alignment import Alignment, align_pairs, stable_region
from facelab.training.alignment_choice import AlignmentChoice, choose_alignment
from facelab.training.checkpoint import Checkpoint, checkpoint_exists, load_checkpoint
from facelab.training.config import TrainConfig, architecture_of
from facelab.training.data import TrainingSplit, make_training_split
from facelab.training.events import Preparing

Frame = tuple[np.ndarray, Alignment, Normalisation]  # template (n, 3) float32 mm, alignment, normalisation


class RunStart:
    """What the starts share: a new split of the data, and no optimisation state to continue."""

    checkpoint: Checkpoint | None = None  # what the run loads from
    fits_maps = True  # fit the identity-preserving subspaces and maps the network does not hold yet

    def split(self, dataset: FaceDataset, config: TrainConfig) -> TrainingSplit:
        return make_training_split(dataset, config.train_fraction, config.split_seed, config.validation_fraction)

    def frame(self, trainer) -> Frame:
        raise NotImplementedError

    def initialise(self, trainer, pairs: list[Pair]) -> bool:
        """Give ``trainer.network`` its first weights; True when the recogniser starts untrained."""
        raise NotImplementedError

    def keep_global_batch(self, config: TrainConfig, world_size: int) -> None:
        """A new run's per-process batch is the config's."""

    def restore(self, trainer) -> None:
        """A new run continues nothing: its optimisers, schedule and position start at zero."""


class FreshStart(RunStart):
    """A new run: fits its frame and, by default, the linear start on the training pairs."""

    def frame(self, trainer) -> Frame:
        template = np.asarray(trainer.dataset.template().vertices, dtype=np.float32)
        if trainer.config.alignment == "auto":
            trainer.emit("on_preparing", Preparing("choosing the alignment on the validation subjects"))
        choice = alignment_for_run(trainer.config, trainer.dataset, trainer.split, template)
        if choice.requested == "auto":
            trainer.alignment_choice = choice.to_dict()
            trainer.emit("on_preparing", Preparing(choice.reason))
        alignment = choice.alignment
        normalisation = trainer.dataset.normalisation(trainer.split.fit_only(),
                                                      transform=lambda faces: _aligned(alignment, template, faces))
        return template, alignment, normalisation

    def initialise(self, trainer, pairs: list[Pair]) -> bool:
        config = trainer.config
        if not config.linear_start:
            return False  # the layers' own random initialisation
        from facelab.training.linear_init import linear_initialisation

        # Every rank fits the same model from the same data (DDP would broadcast rank 0's anyway).
        trainer.emit("on_preparing", Preparing("fitting the linear start"))
        linear_initialisation(trainer.network, trainer.dataset, pairs, trainer.normalisation, seed=config.seed,
                              ridge=config.linear_ridge,
                              frame=trainer.aligned_pairs if trainer.alignment.enabled else None)
        return True


class FineTuning(RunStart):
    """A new run from a trained model (``--init``): the same template is required; a recogniser head
    for other subjects is rebuilt; its normalisation statistics are kept."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def frame(self, trainer) -> Frame:
        dataset = trainer.dataset
        model = self.checkpoint = load_checkpoint(self.path, with_optimizers=False)
        if model.meta.get("template_hash") != dataset.topology_hash or len(model.template) != dataset.n_vertices:
            raise FacelabError(
                f"{self.path} was trained on another template ({len(model.template)} vertices, "
                f"topology {model.meta.get('template_hash')}); the data has {dataset.n_vertices} vertices "
                f"(topology {dataset.topology_hash}): fine-tuning needs the same template."
            )
        if model.meta.get("alignment") is None:  # a model saved before alignment existed
            alignment = fitted_alignment(trainer.config, dataset, trainer.split, np.asarray(model.template))
        else:
            # Its normalisation was taken in that frame, so the model keeps its alignment.
            alignment = Alignment.from_dict(model.meta["alignment"], model.alignment_tensors).check(dataset.n_vertices)
            if alignment.enabled and trainer.config.alignment == "none":
                raise FacelabError(f"{self.path} aligns faces to its template: a fine-tuned model keeps "
                                   "its alignment, so --no-align cannot apply; train from scratch without it.")
        return (np.asarray(model.template, dtype=np.float32), alignment,
                Normalisation(model.norm_mean, model.norm_std))

    def initialise(self, trainer, pairs: list[Pair]) -> bool:
        from facelab.nn import adapt_cheb_state_dict

        model, network = self.checkpoint, trainer.network
        state = adapt_cheb_state_dict(dict(model.model_state), network)  # either Chebyshev layout
        own = network.state_dict()
        if any(k.startswith("fusion.") for k in state) and network.fusion is None:
            variant = architecture_of(model.meta)["variant"]
            raise FacelabError(
                f"{self.path} is an {variant} model: fine-tune it as that variant "
                f"(--variant {variant}), or train a {trainer.config.variant} model from scratch.")
        if model.meta.get("subjects") != trainer.subjects:
            # Other subjects (even as many): the recognizer's last layer is rebuilt (fresh), the rest is kept.
            state = {k: v for k, v in state.items() if not k.startswith("recognizer.head.")}
        if tuple(model.meta.get("network", {}).get("fusion_expressions", ())) != network.config.fusion_expressions:
            # Maps of other expressions (or none): the mixture is fitted afresh on this run's pairs.
            state = {k: v for k, v in state.items() if not k.startswith("fusion.mixture.")}
        # Other subspace sizes (or another head): those start afresh, the rest is kept.
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = network.load_state_dict(state, strict=False).missing_keys
        if any(not key.startswith(("recognizer", "discriminator", "generator", "fusion")) for key in missing):
            raise FacelabError(f"{self.path} does not hold the autoencoder this run needs (missing {missing[0]}).")
        return any(key.startswith("recognizer") for key in missing)


class ResumedRun(RunStart):
    """The run in ``run_dir`` continued from its ``last`` checkpoint, with the same data order.

    Args:
        run_dir: the run to continue.
        requested: this session's settings; the saved run's are kept except where and how it
            runs (device, threads, data workers, minutes between checkpoints) and a larger number
            of epochs, which extends it.
    """

    fits_maps = False  # they are in the checkpoint

    def __init__(self, run_dir: Path, requested: TrainConfig) -> None:
        self.run_dir = run_dir
        config_path = run_dir / "config.json"
        if not config_path.is_file() or not checkpoint_exists(run_dir / "last"):
            raise FacelabError(f"{run_dir} holds no run to resume: expected config.json and a 'last' checkpoint in it.")
        try:
            saved = TrainConfig.from_dict(json.loads(config_path.read_text()))
        except (json.JSONDecodeError, TypeError, AttributeError) as error:
            raise FacelabError(f"{config_path} is corrupt: expected the config.json of a facelab run ({error}).") from None
        saved.epochs = max(saved.epochs, requested.epochs)  # resuming may extend the run
        # Where and how fast it runs is this session's choice (a GPU run may resume on a CPU and
        # back); what it learns (data, model, optimiser, batch) is the saved run's.
        saved.device, saved.num_threads, saved.num_workers = requested.device, requested.num_threads, requested.num_workers
        saved.checkpoint_minutes = requested.checkpoint_minutes
        self.config = saved
        self.checkpoint = load_checkpoint(run_dir / "last")

    def split(self, dataset: FaceDataset, config: TrainConfig) -> TrainingSplit:
        """The split as the checkpoint recorded it (the dataset's split rule may have changed
        since), so the run goes on with the same subjects and recogniser classes."""
        meta = self.checkpoint.meta
        saved = meta.get("split")
        if not saved or not meta.get("subjects"):
            return super().split(dataset, config)
        fit = tuple(meta["subjects"])
        validation = tuple(saved.get("validation") or fit)
        return TrainingSplit(DatasetSplit(tuple(saved["train"]), tuple(saved["test"]), config.split_seed,
                                          config.train_fraction), fit, validation, validation_held_out=validation != fit)

    def frame(self, trainer) -> Frame:
        source = self.checkpoint
        trainer.alignment_choice = source.meta.get("alignment_choice")
        alignment = Alignment.from_dict(source.meta.get("alignment"), source.alignment_tensors).check(trainer.dataset.n_vertices)
        return np.asarray(source.template, dtype=np.float32), alignment, Normalisation(source.norm_mean, source.norm_std)

    def initialise(self, trainer, pairs: list[Pair]) -> bool:
        trainer.network.load_state_dict(self.checkpoint.model_state)
        return False

    def keep_global_batch(self, config: TrainConfig, world_size: int) -> None:
        """On another number of processes the run keeps its global batch (and so its trajectory)
        when the new count divides it: the per-process batch adapts."""
        saved = self.checkpoint.meta.get("global_batch_size")
        if saved and saved % world_size == 0:
            config.batch_size = saved // world_size

    def restore(self, trainer) -> None:
        meta, states = self.checkpoint.meta, self.checkpoint.optimizer_states
        try:
            trainer.optimizer.load_state_dict(states["network"])
        except ValueError:
            raise FacelabError(
                f"{self.run_dir} was saved by an older facelab whose optimiser had another layout: it cannot be "
                f"resumed, but it can be fine-tuned (--init {self.run_dir / 'last'})."
            ) from None
        if trainer.d_optimizer is not None:
            trainer.d_optimizer.load_state_dict(states["discriminator"])
        saved, position = meta["position"], trainer.position
        position.epoch, position.step, position.global_step = saved["epoch"], saved["step"], saved["global_step"]
        position.best_val = float("inf") if saved.get("best_val") is None else saved["best_val"]
        # With another global batch (another number of processes), the epoch continues after the
        # pairs already seen, which the saved step counted in the old batch size.
        old, new = meta.get("global_batch_size"), trainer.train_batches.global_batch_size
        if old and old != new and position.step:
            position.step = min(position.step * old // new, trainer.train_batches.steps_per_epoch)
        elif position.step:  # the interrupted epoch's losses and seconds so far (absent before they were kept)
            position.epoch_losses = dict(saved.get("epoch_losses") or {})
            position.epoch_loss_steps = int(saved.get("epoch_loss_steps", 0))
            position.epoch_seconds = float(saved.get("epoch_seconds", 0.0))
        trainer.scheduler.load_state_dict(meta["scheduler"])
        # Building the schedule set every group's rate for step 0; the saved one is the current.
        for group, rate in zip(trainer.optimizer.param_groups, trainer.scheduler.get_last_lr()):
            group["lr"] = rate


def fitted_alignment(config: TrainConfig, dataset: FaceDataset, split: TrainingSplit,
                     template: np.ndarray | None = None) -> Alignment:
    """The alignment a new run fits (:func:`alignment_for_run`'s, without what chose it)."""
    return alignment_for_run(config, dataset, split, template).alignment


#: Training pairs the alignment is fitted on, and validation pairs ``auto`` checks it on (at most).
ALIGNMENT_FIT_PAIRS, ALIGNMENT_CHECK_PAIRS = 2000, 600


def alignment_for_run(config: TrainConfig, dataset: FaceDataset, split: TrainingSplit,
                      template: np.ndarray | None = None) -> AlignmentChoice:
    """The alignment a new run fits: on the stable region of its training pairs (a seeded sample
    of at most 2,000), or none with ``alignment="none"``. A ``"canonical"`` one learns its
    correction from the same pairs' faces (expressive and neutral, as the data holds them),
    fitted onto ``template`` (default: the dataset's). ``"auto"`` fits both and keeps the one a
    linear check on the validation subjects prefers (facelab/training/alignment_choice.py)."""
    if config.alignment == "none":
        return AlignmentChoice(Alignment("none"), "none")
    rng = np.random.default_rng([config.seed, 4])
    expressive, neutral = sampled_pairs(dataset, split.fit_subjects, ALIGNMENT_FIT_PAIRS, rng)
    similarity = Alignment("similarity", stable_region(expressive, neutral))
    if config.alignment == "similarity":
        return AlignmentChoice(similarity, "similarity")
    if template is None:
        template = dataset.template().vertices
    template = np.asarray(template, np.float32)
    faces = torch.from_numpy(np.concatenate([expressive, neutral]).astype(np.float32))
    canonical = similarity.with_correction(faces, torch.from_numpy(template))
    if config.alignment == "canonical":
        return AlignmentChoice(canonical, "canonical")
    if not split.validation_held_out or not dataset.pairs_of(split.validation_subjects):
        return AlignmentChoice(similarity, "auto", reason="alignment similarity: no validation subjects to choose on")
    check = sampled_pairs(dataset, split.validation_subjects, ALIGNMENT_CHECK_PAIRS,
                           np.random.default_rng([config.seed, 5]))
    return choose_alignment({"similarity": similarity, "canonical": canonical}, template,
                            (expressive, neutral), check)


def sampled_pairs(dataset: FaceDataset, subjects, count: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(expressive, neutral) faces of a seeded sample of at most ``count`` pairs of ``subjects``."""
    pairs = dataset.pairs_of(subjects)
    chosen = np.sort(rng.choice(len(pairs), size=min(count, len(pairs)), replace=False))
    return (np.asarray(dataset.vertices[np.array([pairs[i].expressive for i in chosen])]),
            np.asarray(dataset.vertices[np.array([pairs[i].neutral for i in chosen])]))


def fit_missing_maps(trainer):
    """Fit what the identity-preserving network does not hold yet: its subspaces, its ridge map or
    its expression mixture, on the training batches. Returns the mixture's
    :class:`~facelab.training.mixture_fit.MixtureFit` when it was fitted, else None."""
    fusion, config, batches = trainer.network.fusion, trainer.config, trainer.train_batches
    if fusion is None:
        return None
    device = trainer.device
    if not fusion.is_fitted:
        from facelab.training.subspaces import fit_subspaces

        trainer.emit("on_preparing", Preparing("fitting the expression and identity subspaces"))
        fusion.set_bases(*(t.to(device) for t in fit_subspaces(
            batches, config.expression_dims, config.identity_dims, seed=config.seed)))
    if fusion.ridge and not fusion.ridge_is_fitted:
        from facelab.training.subspaces import fit_ridge

        trainer.emit("on_preparing", Preparing("fitting the ridge map inside the expression subspace"))
        fusion.set_ridge(*(t.to(device) for t in fit_ridge(batches, fusion, seed=config.seed)))
    if fusion.mixture is not None and not fusion.mixture_is_fitted:
        from facelab.training.mixture_fit import fit_mixture

        trainer.emit("on_preparing", Preparing("fitting one map per expression and the expression classifier"))
        fitted = fit_mixture(batches, fusion, trainer.network.config.fusion_expressions,
                             seed=config.seed, input_noise_mm=config.input_noise_mm, blends=config.mixture_blends)
        trainer.emit("on_preparing", Preparing(fitted.describe()))
        return fitted
    return None


def _aligned(alignment: Alignment, template: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces (k, n, 3) brought into the template's frame (as they are when alignment is off)."""
    if not alignment.enabled:
        return faces
    return align_pairs(alignment, torch.from_numpy(template), torch.from_numpy(faces), None)[0].numpy()
