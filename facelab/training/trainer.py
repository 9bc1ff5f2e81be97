"""The one training loop, used by ``facelab train``, ``train_model.py`` and the GUI.

It knows nothing of progress bars or Qt: it reports through :class:`TrainingCallback` events
and obeys a :class:`TrainingControl`. A run directory holds ``config.json``, ``metrics.csv``
(one row per epoch), the checkpoints ``last`` and ``best`` (lowest validation error), and
TensorBoard logs when tensorboard is installed. What a fresh, resumed or fine-tuned run loads and
fits before its first step is in ``facelab/training/starts.py``.

The discriminator has its own Adam optimiser and is updated first at every step, on detached
latent codes; then the rest of the network (encoder, decoder, generator, recognizer) is updated
on L_tot (Eq. 7). The discriminator's condition z_e is detached in both updates: the encoder is
shaped by the reconstruction, L1 and identity terms, not by making its codes easy to condition on.

Scale (see ``facelab/training/distributed.py`` and docs/scale-out.md): under
``torchrun`` every process trains on its shard of each global batch with DistributedDataParallel.
The two updates get one DDP module each, and each module's forward runs once per step and uses
every one of its parameters (no ``find_unused_parameters``): the discriminator's forward scores
real and generated codes in one batch; :class:`NetworkStep` computes everything L_tot needs, and
the discriminator's verdict inside L_tot is taken with its parameters detached
(``torch.func.functional_call``), so the network's backward never reaches D. Checkpoints hold the
unwrapped weights, so a distributed run resumes in one process and back.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facelab.atomic import atomic_write_text, remove_partial_writes
from facelab.data.dataset import FaceDataset, Pair
from facelab.errors import FacelabError
from facelab.evaluation.metrics import per_vertex_error
from facelab.mesh.alignment import align_pairs
from facelab.cpu_memory import large_arrays_in_own_pages, release_freed_memory
from facelab.training import distributed
from facelab.training.amp import autocast, check_amp
from facelab.training.checkpoint import Checkpoint, checkpoint_exists, save_checkpoint
from facelab.training.config import TrainConfig
from facelab.training.data import PairBatches, TrainingSplit, load_dataset_in_turn
from facelab.training.events import (
    CheckpointSaved,
    EpochDone,
    Preparing,
    Preview,
    RunFinished,
    RunStarted,
    StepDone,
    TrainingCallback,
    TrainingControl,
)
from facelab.training.losses import discriminator_loss, network_losses
from facelab.training.metrics_log import MetricsLog
from facelab.training.network_step import NetworkStep
from facelab.training.recognizer_warmup import warm_up_recognizer
from facelab.training.schedule import make_scheduler, parameter_groups
from facelab.training.starts import FineTuning, FreshStart, ResumedRun, RunStart, fit_missing_maps

#: Validation pairs predicted and scored at a time (a chunk's predictions and neutrals: ~30 MB at
#: 5,000 vertices), so that scoring thousands of pairs never holds them all.
VALIDATION_CHUNK = 256


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class _Position:
    epoch: int = 0          # epochs completed
    step: int = 0           # steps completed within the current epoch
    global_step: int = 0
    best_val: float = float("inf")
    # The current epoch so far, kept in a mid-epoch checkpoint so that a resumed epoch's
    # metrics row covers all of its steps: loss sums, how many steps they sum, seconds spent.
    epoch_losses: dict = field(default_factory=dict)
    epoch_loss_steps: int = 0
    epoch_seconds: float = 0.0


class Trainer:
    """Train (or fine-tune, or resume) a network on a dataset.

    Args:
        config: the run's settings.
        run_dir: where config, metrics and checkpoints go. Resuming reads it back.
        callbacks: event receivers.
        control: stop/pause flag (a fresh one if omitted).
        dataset: an already loaded dataset (else ``config.data`` is loaded).
        init_checkpoint: fine-tune from this model: the same template is required; a recognizer
            head for other subjects is rebuilt; its normalisation statistics are kept.
        resume: continue the run in ``run_dir`` from its ``last`` checkpoint (same data order).
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path, callbacks: list[TrainingCallback] | tuple = (),
                 control: TrainingControl | None = None, dataset: FaceDataset | None = None,
                 init_checkpoint: str | Path | None = None, resume: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.callbacks = list(callbacks)
        self.control = control or TrainingControl()
        self.resume = resume
        self.init_checkpoint = Path(init_checkpoint) if init_checkpoint else None
        # What the run loads and fits before its first step (facelab/training/starts.py).
        self.start: RunStart = FreshStart()
        if resume:
            self.start = ResumedRun(self.run_dir, config)
            config = self.start.config
        elif self.init_checkpoint is not None:
            self.start = FineTuning(self.init_checkpoint)
        self.config = config.validate()
        self.dataset = dataset
        self._metrics_log: MetricsLog | None = None
        # What chose the alignment when the config asked for "auto" (AlignmentChoice.to_dict()).
        self.alignment_choice: dict | None = None
        self._diverged = False
        self._epoch_started = self._last_saved = time.perf_counter()

    # ---- set-up --------------------------------------------------------------------------
    def emit(self, name: str, event) -> None:
        """Call ``name`` (``on_preparing``, ``on_step``, ...) on every callback, on rank 0 only."""
        if not getattr(self, "group", distributed.SINGLE_PROCESS).is_main:
            return  # one progress bar and one log: rank 0's
        for callback in self.callbacks:
            getattr(callback, name)(event)

    def prepare(self) -> None:
        """Load the data and build the network, optimisers and batches (``run`` calls it; a
        benchmark or a notebook may call it and then drive :meth:`train_step` itself)."""
        from facelab.nn import NetworkConfig, NeutralisationNetwork

        config, start = self.config, self.start
        self._set_up_process()
        if self.dataset is None:
            self.emit("on_preparing", Preparing("loading data"))
            self.dataset = load_dataset_in_turn(config, self.group)
        dataset = self.dataset
        self.split: TrainingSplit = start.split(dataset, config)
        self.subjects = list(self.split.fit_subjects)
        if not dataset.pairs_of(self.split.fit_subjects):
            raise FacelabError(
                f"{dataset.name} has no expressive/neutral pairs among its {len(self.subjects)} training subjects: "
                "expected each subject's neutral face and at least one expression of the same subject."
            )
        # template_vertices is also the checkpoints' template.
        self.template_vertices, self.alignment, self.normalisation = start.frame(self)
        training_pairs = self._training_pairs()
        network_config = NetworkConfig(
            n_vertices=dataset.n_vertices, triangles_hash=dataset.topology_hash, laplacian_kind=config.laplacian,
            K=config.K, latent=config.latent, conv=config.conv, n_subjects=len(self.subjects), variant=config.variant,
            downsample=tuple(config.downsample), expression_dims=config.expression_dims,
            identity_dims=config.identity_dims, fusion_ridge=config.fusion_ridge,
            fusion_expressions=self._mixture_expressions(training_pairs),
        )
        self.network = NeutralisationNetwork(network_config, dataset.triangles,
                                             template_vertices=self.template_vertices).to(self.device)
        recognizer_is_new = start.initialise(self, training_pairs)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.network, config), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.d_optimizer = None
        if self.network.discriminator is not None:
            self.d_optimizer = torch.optim.Adam(self.network.discriminator_parameters(), lr=config.discriminator_lr,
                                                betas=(0.5, 0.999))
        self.position = _Position()
        start.keep_global_batch(config, self.group.world_size)
        subject_index = {subject: i for i, subject in enumerate(self.subjects)}
        self.train_batches = PairBatches(dataset, training_pairs, self.normalisation,
                                         subject_index, config.batch_size, config.seed, self.device,
                                         self.group.rank, self.group.world_size, config.num_workers,
                                         alignment=self.alignment, template=self.template_vertices)
        # What the mixture's fit chose and its classifier's training accuracy, when this run fits one.
        self.mixture_fit = fit_missing_maps(self) if start.fits_maps else None
        # Every rank fits R on the same sample; the DDP wrapping below then gives every rank
        # rank 0's parameters (so it must stay after this), whatever the summation order did.
        self.recognizer_warmup_loss = self._warm_up_recognizer() if recognizer_is_new else None
        self.scheduler = make_scheduler(self.optimizer, config, self.train_batches.steps_per_epoch)
        std = self.train_batches.std
        self.rec_weights = std / std.mean() if config.experimental.rec_space == "mm" else None
        start.restore(self)  # a resumed run's optimisers, schedule and position
        self._noise_step = self.position.global_step
        self._wrap_for_data_parallel()
        self.val_pairs = dataset.pairs_of(self.split.validation_subjects)
        test_pairs = dataset.pairs_of(self.split.test_subjects) or self.val_pairs
        self.preview_pair = test_pairs[config.preview_index % len(test_pairs)] if test_pairs else None
        release_freed_memory()  # the fits' freed arrays, kept in the heap otherwise (see cpu_memory.py)

    def _set_up_process(self) -> None:
        """Threads, seeds, the process group and the device."""
        config = self.config
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        # Every rank seeds alike, so every rank builds the same initial weights (DDP also
        # broadcasts rank 0's when it wraps the modules).
        seed_everything(config.seed, config.deterministic)
        requested = torch.device(config.device)
        if requested.type == "cuda" and not torch.cuda.is_available():
            raise FacelabError(f"--device {config.device} was asked for, but no CUDA device is available: use --device cpu.")
        self.group = distributed.init_from_environment(requested.type)
        self.device = distributed.device_for(config.device, self.group.local_rank, self.group.is_distributed)
        check_amp(config.amp, self.device)

    def _warm_up_recognizer(self) -> float | None:
        """R's cross-entropy after its opt-in warm-up (None when off or when there is no R)."""
        experimental = self.config.experimental
        if experimental.recognizer_warmup_samples > 0:
            self.emit("on_preparing", Preparing("warming up the recogniser"))
        with large_arrays_in_own_pages():  # its batches of 64 would fragment the heap the steps reuse
            return warm_up_recognizer(self.network, self.train_batches, experimental.recognizer_warmup_samples,
                                      experimental.recognizer_warmup_steps, lr=self.config.recognizer_lr,
                                      seed=self.config.seed)

    def _mixture_expressions(self, pairs: list[Pair]) -> tuple[str, ...]:
        if not self.config.fusion_mixture:
            return ()
        from facelab.training.mixture_fit import mixture_expressions

        return mixture_expressions(pairs, blends=self.config.mixture_blends > 0)

    def _training_pairs(self) -> list[Pair]:
        """The fit subjects' pairs, and ``neutral_pairs`` times each one's neutral face as its own pair."""
        pairs = self.dataset.pairs_of(self.split.fit_subjects)
        if self.config.neutral_pairs:
            neutral_of = {}
            for pair in pairs:
                neutral_of.setdefault(pair.subject, pair.neutral)
            own = [Pair(index, index, subject, "neutral") for subject, index in sorted(neutral_of.items())]
            pairs = pairs + own * self.config.neutral_pairs
        return pairs

    def aligned_pairs(self, expressive: torch.Tensor, neutral: torch.Tensor | None):
        """Faces (B, n, 3) and their neutrals brought into the template's frame by the run's alignment."""
        template = torch.from_numpy(self.template_vertices)
        x_e, x_n, _ = align_pairs(self.alignment, template, expressive, neutral)
        return x_e, x_n

    def _wrap_for_data_parallel(self) -> None:
        """The modules each optimiser trains, wrapped in DDP when several processes train."""
        network = self.network
        self.network_step: nn.Module = NetworkStep(network, self.config)
        self.discriminator_step: nn.Module | None = network.discriminator
        if self.group.is_distributed:
            self.network_step = distributed.data_parallel(self.network_step, self.device)
            if network.discriminator is not None:
                self.discriminator_step = distributed.data_parallel(network.discriminator, self.device)

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> RunFinished:
        """Train until the configured number of epochs or a stop request. Re-raises failures
        after telling the callbacks (``on_failed``)."""
        try:
            return self._run()
        except BaseException as error:
            self.emit("on_failed", error)
            raise
        finally:
            if self._metrics_log is not None:
                self._metrics_log.close()
            distributed.shutdown(getattr(self, "group", distributed.SINGLE_PROCESS))

    def _run(self) -> RunFinished:
        self.prepare()
        config, batches, position, group = self.config, self.train_batches, self.position, self.group
        if group.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_partial_writes(self.run_dir)
            atomic_write_text(self.run_dir / "config.json", json.dumps(config.to_dict(), indent=2))
            self._metrics_log = MetricsLog(self.run_dir, config.tensorboard)
        self._keep_best_consistent()
        self._start_as_best()
        steps = batches.steps_per_epoch
        self.emit("on_run_started", RunStarted(
            self.run_dir, config.epochs, position.epoch, position.step, steps, len(self.subjects),
            len(self.split.validation_subjects) if self.split.validation_held_out else 0, len(batches.pairs),
            config.variant, self._device_label()))
        started = time.perf_counter()
        steps_this_process = 0
        total_steps = config.epochs * steps
        self._last_saved = time.perf_counter()
        while position.epoch < config.epochs:
            self._epoch_started = time.perf_counter() - position.epoch_seconds
            self.network.train()
            epoch_batches = batches.epoch_batches(position.epoch, position.step)
            while position.step < steps:
                self.control.wait_while_paused()
                if self._agree_to_stop():
                    return self._finish("stopped")
                losses = self.train_step(*next(epoch_batches))
                for key, value in losses.items():
                    position.epoch_losses[key] = position.epoch_losses.get(key, 0.0) + value
                position.epoch_loss_steps += 1
                position.step += 1
                position.global_step += 1
                steps_this_process += 1
                if position.step < steps:
                    self._save_on_schedule()
                elapsed = time.perf_counter() - started
                remaining = total_steps - position.global_step
                self.emit("on_step", StepDone(position.epoch, position.step - 1, position.global_step, steps,
                                               config.epochs, losses, elapsed,
                                               elapsed / steps_this_process * remaining))
                if config.preview_every and position.global_step % config.preview_every == 0:
                    self._preview()
            self._agree_to_stop(check_stop=False)  # a divergence in the epoch's last step
            metrics = self._mean_over_ranks(position.epoch_losses, position.epoch_loss_steps)
            metrics["val_mean_error_mm"] = self.validation_error()
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]
            metrics["seconds"] = time.perf_counter() - self._epoch_started
            position.epoch += 1
            position.step = 0
            position.epoch_losses, position.epoch_loss_steps, position.epoch_seconds = {}, 0, 0.0
            is_best = metrics["val_mean_error_mm"] < position.best_val
            if is_best:
                position.best_val = metrics["val_mean_error_mm"]
            if group.is_main:
                # best before last, and the metrics row after both: an interruption between two
                # writes leaves last at the previous epoch, which a resume trains again.
                if is_best:
                    self._save("best", metrics)
                self._save("last", metrics)
                self._metrics_log.append(position.epoch, metrics)
            self.emit("on_epoch", EpochDone(position.epoch - 1, config.epochs, metrics, is_best))
        return self._finish("completed")

    def _save_on_schedule(self) -> None:
        """Save ``last`` inside an epoch once ``checkpoint_minutes`` have passed since the last
        save, so that a killed process (a closed session, a crash, no Ctrl-C) loses at most that
        much: ``--resume`` continues from the saved step as an uninterrupted run would."""
        minutes = self.config.checkpoint_minutes
        if not minutes or time.perf_counter() - self._last_saved < minutes * 60:
            return
        # Never over a good 'last' with broken weights: a step can leave non-finite weights (its
        # gradients) before any loss shows it, and under torchrun the ranks agree on a divergence
        # only at the next step. The weights are the same on every rank, so rank 0's check holds.
        if self.group.is_main and not self._diverged and self._weights_are_finite():
            self._save("last", None)
        self._last_saved = time.perf_counter()

    def _weights_are_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.network.parameters())

    def _keep_best_consistent(self) -> None:
        """A resumed run whose ``best`` is missing (a run interrupted by an older facelab between its
        two saves, or a deleted file) gets it back from ``last`` when ``last`` holds the best epoch;
        otherwise the best is chosen again from the epochs to come, so ``best`` and the reported best
        validation error always belong together."""
        source = self.start.checkpoint if self.resume else None
        if source is None or self.position.best_val == float("inf") or checkpoint_exists(self.run_dir / "best"):
            return
        metrics = source.meta.get("metrics") or {}
        if metrics.get("val_mean_error_mm") == self.position.best_val and source.meta["position"]["step"] == 0:
            if self.group.is_main:
                self._save("best", metrics)
        else:
            self.emit("on_preparing", Preparing("no 'best' checkpoint to resume with: the best is chosen again "
                                                 "from the epochs to come"))
            self.position.best_val = float("inf")
        distributed.barrier(self.group)

    def _start_as_best(self) -> None:
        """For the identity-preserving variant, the network as it starts (its closed-form fits, or
        the model being fine-tuned) is the first candidate for ``best``: a run keeps it unless an
        epoch does better on the validation subjects, so training never hands back a model worse
        than its start. The paper's variants keep their trained network, as the paper reports it,
        unless the run has no epoch (``epochs`` 0: the start is all it makes)."""
        config = self.config
        if self.resume or self.position.global_step or (config.variant != "identity-preserving" and config.epochs):
            return
        error = self.validation_error()
        if not error < self.position.best_val:
            return
        self.position.best_val = error
        self.emit("on_preparing", Preparing(f"the start, before any step: validation error {error:.4f} mm"))
        if self.group.is_main:
            self._save("best", {"val_mean_error_mm": error})
        distributed.barrier(self.group)

    def _device_label(self) -> str:
        if self.group.is_distributed:
            return f"{self.device.type} x {self.group.world_size} processes"
        return str(self.device)

    def _agree_to_stop(self, check_stop: bool = True) -> bool:
        """Whether to stop now; raise on every rank when any rank's loss became NaN or infinite.

        In a single process the divergence was raised at its step already; here the ranks also
        agree, so that all stop at the same step (one all-reduce of two flags)."""
        stop, diverged = distributed.any_rank((check_stop and self.control.stop_requested, self._diverged),
                                              self.group, self.device)
        if diverged:
            raise FacelabError("training diverged (the loss became NaN or infinite): lower the learning rate.")
        return stop

    def _mean_over_ranks(self, sums: dict[str, float], steps: int) -> dict[str, float]:
        """Each loss term's mean over the epoch's ``steps`` steps and over the processes."""
        keys = sorted(sums)
        if not keys:
            return {}
        totals = distributed.all_reduce_sum(torch.tensor([sums[key] for key in keys], dtype=torch.float64,
                                                         device=self.device), self.group)
        scale = max(steps, 1) * self.group.world_size
        return {key: float(value) / scale for key, value in zip(keys, totals.tolist())}

    def train_step(self, x_e: torch.Tensor, x_n: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """One step on a normalised batch: the discriminator's update, then the network's
        (L_tot, Eq. 7). Returns the losses as floats."""
        network, config = self.network, self.config
        if config.input_noise_mm > 0:
            x_e = self._noisy(x_e)
        precision = autocast(config.amp, self.device)
        with precision:
            outputs = self.network_step(x_e, x_n)
        losses: dict[str, float] = {}
        fake_logits = None
        if self.d_optimizer is not None:
            z_e = outputs["z_e"].detach()
            z_g = outputs.get("z_g_l2l", outputs["z_g"])
            batch = z_e.shape[0]
            with precision:
                # Real and generated codes in one forward: DDP sees D run once per backward.
                real_logits, generated_logits = self.discriminator_step(
                    torch.cat([outputs["z_n"].detach(), z_g.detach()]), torch.cat([z_e, z_e])).split(batch)
                d_loss = discriminator_loss(real_logits, generated_logits)
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_optimizer.step()
            losses["d"] = float(d_loss.detach())
            # D's verdict on G for L_tot, with D's (just updated) parameters as constants: the
            # network's backward reaches G through D's input only, never D's weights.
            frozen = {name: value.detach() for name, value in network.discriminator.named_parameters()}
            with precision:
                fake_logits = torch.func.functional_call(network.discriminator, frozen, (z_g, z_e))
        with precision:
            terms = network_losses(outputs, x_n, labels, config.weights, config.variant, fake_logits,
                                   config.experimental.gan_loss, config.experimental.l2l_trains_encoder,
                                   self.rec_weights, config.l1_reduction)
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        self.optimizer.step()
        self.scheduler.step()
        if not torch.isfinite(terms.total):
            if not self.group.is_distributed:
                raise FacelabError("training diverged (the loss became NaN or infinite): lower the learning rate.")
            self._diverged = True  # raised on every rank at the next agreement
        losses.update(terms.as_floats())
        return losses

    def _noisy(self, x_e: torch.Tensor) -> torch.Tensor:
        """``x_e`` with Gaussian noise of a per-face standard deviation in [0, input_noise_mm] mm,
        drawn from (seed, step, rank) alone, so a resumed run adds the same noise as an
        uninterrupted one."""
        generator = torch.Generator(device=x_e.device)
        # Counted here, not read from the position: loops that drive train_step themselves
        # (screens, benchmarks) do not advance it. prepare() starts it at the run's global step.
        step = self._noise_step
        self._noise_step += 1
        generator.manual_seed(int(np.random.SeedSequence([self.config.seed, step, self.group.rank]).generate_state(1)[0]))
        sigma = torch.rand(x_e.shape[0], 1, 1, generator=generator, device=x_e.device) * self.config.input_noise_mm
        noise = torch.randn(x_e.shape, generator=generator, device=x_e.device, dtype=x_e.dtype)
        return x_e + sigma * noise / self.train_batches.std

    # ---- evaluation during training -----------------------------------------------------------
    @torch.no_grad()
    def predict(self, expressive_indices: np.ndarray) -> np.ndarray:
        """Predicted neutral vertices (k, n, 3) in mm for dataset meshes, in batches."""
        self.network.eval()
        out = []
        for start in range(0, len(expressive_indices), 64):
            rows = expressive_indices[start:start + 64]
            x_e, transform = self.train_batches.faces(self.dataset.vertices[rows])
            pred = self.train_batches.restore(self.network.neutralise(x_e)[0], transform)
            out.append(pred.cpu().numpy())
        self.network.train()
        return np.concatenate(out) if out else np.zeros((0, self.dataset.n_vertices, 3), np.float32)

    def validation_error(self) -> float:
        """Mean per-vertex error (mm) over the validation pairs; each process predicts its share
        a chunk at a time (the whole share's predictions and neutrals would be GBs on a large
        dataset) and the sums and counts are added over the processes."""
        if not self.val_pairs:
            return float("nan")
        group = self.group
        share = self.val_pairs[group.rank::group.world_size]
        error_sum, count = 0.0, 0
        for start in range(0, len(share), VALIDATION_CHUNK):
            chunk = share[start:start + VALIDATION_CHUNK]
            expressive = np.array([p.expressive for p in chunk], dtype=np.int64)
            neutral = np.array([p.neutral for p in chunk], dtype=np.int64)
            errors = per_vertex_error(self.predict(expressive), self.dataset.vertices[neutral])
            error_sum, count = error_sum + float(np.sum(errors, dtype=np.float64)), count + errors.size
        totals = distributed.all_reduce_sum(
            torch.tensor([error_sum, float(count)], dtype=torch.float64, device=self.device), group)
        error_sum, count = totals.tolist()
        return error_sum / count if count else float("nan")

    def _preview(self) -> None:
        if self.preview_pair is None:
            return
        pair = self.preview_pair
        predicted = self.predict(np.array([pair.expressive]))[0]
        truth = np.asarray(self.dataset.vertices[pair.neutral], dtype=np.float32)
        self.emit("on_preview", Preview(self.position.global_step, self.dataset.pairs.index(pair),
                                         np.asarray(self.dataset.vertices[pair.expressive], dtype=np.float32),
                                         predicted, truth, per_vertex_error(predicted, truth).astype(np.float32)))

    # ---- outputs ---------------------------------------------------------------------------
    def checkpoint(self, metrics: dict[str, float] | None = None, with_optimizers: bool = True) -> Checkpoint:
        """The run as it stands. Its architecture is recorded in ``network`` alone and its settings
        (the run's config.json) in ``train_config``; readers take the architecture from
        ``network`` (:func:`~facelab.training.config.architecture_of`)."""
        optimizers = {}
        if with_optimizers:
            optimizers["network"] = self.optimizer.state_dict()
            if self.d_optimizer is not None:
                optimizers["discriminator"] = self.d_optimizer.state_dict()
        dataset = self.dataset
        meta = {
            "network": self.network.config.to_dict(),
            "template_hash": dataset.topology_hash,
            "subjects": self.subjects,
            "epoch": self.position.epoch,
            "position": vars(self.position).copy(),
            "scheduler": self.scheduler.state_dict(),
            "metrics": metrics or {},
            "data": {"source": str(self.config.data), "name": dataset.name, "layout": dataset.layout,
                     "options": self.config.data_options},
            "split": {"train": list(self.split.split.train_subjects), "test": list(self.split.test_subjects),
                      "validation": list(self.split.validation_subjects)},
            "train_config": self.config.to_dict(),
            # How the run was spread: resuming with another number of processes re-counts the
            # step inside the epoch in the new global batch.
            "world_size": self.group.world_size,
            "global_batch_size": self.train_batches.global_batch_size,
            "alignment": self.alignment.to_dict(),
        }
        if self.alignment_choice is not None:
            meta["alignment_choice"] = self.alignment_choice
        mixture_fit = self._mixture_fit_record()
        if mixture_fit is not None:
            meta["mixture_fit"] = mixture_fit
        if meta["position"]["best_val"] == float("inf"):
            meta["position"]["best_val"] = None
        return Checkpoint(
            model_state=self.network.state_dict(), triangles=dataset.triangles,
            template=self.template_vertices, norm_mean=self.normalisation.mean, norm_std=self.normalisation.std,
            meta=meta, optimizer_states=optimizers, alignment_tensors=self.alignment.tensors(),
        )

    def _mixture_fit_record(self) -> dict | None:
        """What chose the expression mixture's router and shrinkage: this run's fit, or, where the
        mixture came fitted (resumed, fine-tuned), what the checkpoint it came from recorded."""
        fusion = self.network.fusion
        if fusion is None or fusion.mixture is None:
            return None
        if self.mixture_fit is not None:
            return self.mixture_fit.to_dict()
        source = self.start.checkpoint
        return None if source is None else source.meta.get("mixture_fit")

    def _save(self, kind: str, metrics: dict[str, float] | None) -> Path:
        path = self.run_dir / kind
        if self.position.step:  # mid-epoch: the seconds the epoch has taken so far go with it
            self.position.epoch_seconds = time.perf_counter() - self._epoch_started
        self._last_saved = time.perf_counter()
        save_checkpoint(path, self.checkpoint(metrics))
        self.emit("on_checkpoint", CheckpointSaved(path, kind, self.position.epoch))
        return path

    def _finish(self, status: str) -> RunFinished:
        if self.group.is_main and (status == "stopped" or not checkpoint_exists(self.run_dir / "last")):
            # A stop mid-epoch leaves a valid checkpoint at this step; a run of no epoch, its start.
            start_only = not self.config.epochs and self.position.best_val < float("inf")
            self._save("last", {"val_mean_error_mm": self.position.best_val} if start_only else None)
        distributed.barrier(self.group)  # no process reports the run done before rank 0 wrote it
        last = self.run_dir / "last"
        best = self.run_dir / "best" if checkpoint_exists(self.run_dir / "best") else None
        best_val = None if self.position.best_val == float("inf") else self.position.best_val
        result = RunFinished(status, self.run_dir, self.position.epoch, best, last, best_val)
        self.emit("on_finished", result)
        return result
