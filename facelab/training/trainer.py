"""The one training loop, used by ``facelab train``, ``train_model.py`` and the GUI.

It knows nothing of progress bars or Qt: it reports through :class:`TrainingCallback` events
and obeys a :class:`TrainingControl`. A run directory holds ``config.json``, ``metrics.csv``
(one row per epoch), the checkpoints ``last`` and ``best`` (lowest validation error), and
TensorBoard logs when tensorboard is installed.

The discriminator has its own Adam optimiser and is updated first at every step, on detached
latent codes; then the rest of the network (encoder, decoder, generator, recognizer) is updated
on L_tot (Eq. 7). The discriminator's condition z_e is detached in both updates: the encoder is
shaped by the reconstruction, L1 and identity terms, not by making its codes easy to condition on.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facelab.atomic import atomic_write_text
from facelab.data.dataset import DatasetSplit, FaceDataset, Normalisation
from facelab.data.layouts import load_dataset
from facelab.errors import FacelabError
from facelab.evaluation.metrics import per_vertex_error
from facelab.training.checkpoint import Checkpoint, checkpoint_exists, load_checkpoint, save_checkpoint
from facelab.training.config import TrainConfig
from facelab.training.data import PairBatches, TrainingSplit, make_training_split
from facelab.training.events import (
    CheckpointSaved,
    EpochDone,
    Preview,
    RunFinished,
    RunStarted,
    StepDone,
    TrainingCallback,
    TrainingControl,
)
from facelab.training.losses import discriminator_loss, network_losses

METRIC_COLUMNS = ("epoch", "total", "l1", "gan", "l2l", "id", "rec", "d", "val_mean_error_mm", "lr", "seconds")


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
        self._resume_from: Checkpoint | None = None
        if resume:
            config = self._read_resume_config(config)
        self.config = config.validate()
        self.dataset = dataset
        self._tensorboard = None

    # ---- set-up --------------------------------------------------------------------------
    def _read_resume_config(self, requested: TrainConfig) -> TrainConfig:
        config_path = self.run_dir / "config.json"
        if not config_path.is_file() or not checkpoint_exists(self.run_dir / "last"):
            raise FacelabError(f"{self.run_dir} holds no run to resume: expected config.json and a 'last' checkpoint in it.")
        try:
            saved = TrainConfig.from_dict(json.loads(config_path.read_text()))
        except (json.JSONDecodeError, TypeError) as error:
            raise FacelabError(f"{config_path} is corrupt: expected the config.json of a facelab run ({error}).") from None
        saved.epochs = max(saved.epochs, requested.epochs)  # resuming may extend the run
        self._resume_from = load_checkpoint(self.run_dir / "last")
        return saved

    def _emit(self, name: str, event) -> None:
        for callback in self.callbacks:
            getattr(callback, name)(event)

    def _setup(self) -> None:
        from facelab.nn import NetworkConfig, NeutralisationNetwork

        config = self.config
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        seed_everything(config.seed, config.deterministic)
        if config.device.startswith("cuda") and not torch.cuda.is_available():
            raise FacelabError("--device cuda was asked for, but no CUDA device is available: use --device cpu.")
        self.device = torch.device(config.device)
        if self.dataset is None:
            self.dataset = load_dataset(config.data, format=config.data_format, **config.data_options)
        dataset = self.dataset
        self.split: TrainingSplit = make_training_split(dataset, config.train_fraction, config.split_seed,
                                                        config.validation_fraction)
        self.subjects = list(self.split.fit_subjects)
        subject_index = {subject: i for i, subject in enumerate(self.subjects)}

        source = self._resume_from
        init = None
        if source is None and self.init_checkpoint is not None:
            init = load_checkpoint(self.init_checkpoint, with_optimizers=False)
            if init.meta.get("template_hash") != dataset.topology_hash or len(init.template) != dataset.n_vertices:
                raise FacelabError(
                    f"{self.init_checkpoint} was trained on another template ({len(init.template)} vertices, "
                    f"topology {init.meta.get('template_hash')}); the data has {dataset.n_vertices} vertices "
                    f"(topology {dataset.topology_hash}): fine-tuning needs the same template."
                )
        if source is not None:
            self.normalisation = Normalisation(source.norm_mean, source.norm_std)
        elif init is not None:
            self.normalisation = Normalisation(init.norm_mean, init.norm_std)
        else:
            fit_only = DatasetSplit(self.split.fit_subjects, self.split.test_subjects, config.split_seed,
                                    config.train_fraction)
            self.normalisation = dataset.normalisation(fit_only)

        network_config = NetworkConfig(
            n_vertices=dataset.n_vertices, triangles_hash=dataset.topology_hash, laplacian_kind=config.laplacian,
            K=config.K, latent=config.latent, conv=config.conv, n_subjects=len(self.subjects), variant=config.variant,
        )
        self.network = NeutralisationNetwork(network_config, dataset.triangles).to(self.device)
        if init is not None:
            self._load_init_weights(init)
        self.optimizer = torch.optim.AdamW(self.network.generator_parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=config.lr_decay)
        self.d_optimizer = None
        if self.network.discriminator is not None:
            self.d_optimizer = torch.optim.Adam(self.network.discriminator_parameters(), lr=config.discriminator_lr,
                                                betas=(0.5, 0.999))
        self.position = _Position()
        if source is not None:
            self.network.load_state_dict(source.model_state)
            self.optimizer.load_state_dict(source.optimizer_states["network"])
            if self.d_optimizer is not None:
                self.d_optimizer.load_state_dict(source.optimizer_states["discriminator"])
            self.scheduler.load_state_dict(source.meta["scheduler"])
            pos = source.meta["position"]
            self.position = _Position(pos["epoch"], pos["step"], pos["global_step"], pos.get("best_val", float("inf")))

        self.train_batches = PairBatches(dataset, dataset.pairs_of(self.split.fit_subjects), self.normalisation,
                                         subject_index, config.batch_size, config.seed, self.device)
        self.val_pairs = dataset.pairs_of(self.split.validation_subjects)
        test_pairs = dataset.pairs_of(self.split.test_subjects) or self.val_pairs
        self.preview_pair = test_pairs[config.preview_index % len(test_pairs)] if test_pairs else None

    def _load_init_weights(self, init: Checkpoint) -> None:
        from facelab.nn import adapt_cheb_state_dict

        state = adapt_cheb_state_dict(dict(init.model_state), self.network)  # either Chebyshev layout
        own = self.network.state_dict()
        if init.meta.get("subjects") != self.subjects:
            # Other subjects: the recognizer's last layer is rebuilt (fresh), the rest is kept.
            state = {k: v for k, v in state.items() if not (k in own and own[k].shape != v.shape)}
        state = {k: v for k, v in state.items() if k in own}
        missing = self.network.load_state_dict(state, strict=False).missing_keys
        if any(not key.startswith(("recognizer", "discriminator", "generator")) for key in missing):
            raise FacelabError(f"{self.init_checkpoint} does not hold the autoencoder this run needs (missing {missing[0]}).")

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> RunFinished:
        """Train until the configured number of epochs or a stop request. Re-raises failures
        after telling the callbacks (``on_failed``)."""
        try:
            return self._run()
        except BaseException as error:
            self._emit("on_failed", error)
            raise
        finally:
            if self._tensorboard is not None:
                self._tensorboard.close()

    def _run(self) -> RunFinished:
        self._setup()
        config, batches, position = self.config, self.train_batches, self.position
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.json", json.dumps(config.to_dict(), indent=2))
        self._open_tensorboard()
        steps = batches.steps_per_epoch
        self._emit("on_run_started", RunStarted(
            self.run_dir, config.epochs, position.epoch, position.step, steps, len(self.subjects),
            len(self.split.validation_subjects), len(batches.pairs), config.variant, str(self.device)))
        started = time.perf_counter()
        steps_this_process = 0
        total_steps = config.epochs * steps
        epoch_sums: dict[str, float] = {}
        while position.epoch < config.epochs:
            epoch_started = time.perf_counter()
            self.network.train()
            while position.step < steps:
                self.control.wait_while_paused()
                if self.control.stop_requested:
                    return self._finish("stopped")
                losses = self._train_step(*batches.batch(position.epoch, position.step))
                for key, value in losses.items():
                    epoch_sums[key] = epoch_sums.get(key, 0.0) + value
                position.step += 1
                position.global_step += 1
                steps_this_process += 1
                elapsed = time.perf_counter() - started
                remaining = total_steps - position.global_step
                self._emit("on_step", StepDone(position.epoch, position.step - 1, position.global_step, steps,
                                               config.epochs, losses, elapsed,
                                               elapsed / steps_this_process * remaining))
                if config.preview_every and position.global_step % config.preview_every == 0:
                    self._preview()
            metrics = {key: value / max(steps, 1) for key, value in epoch_sums.items()}
            epoch_sums = {}
            metrics["val_mean_error_mm"] = self.validation_error()
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]
            metrics["seconds"] = time.perf_counter() - epoch_started
            self.scheduler.step()
            position.epoch += 1
            position.step = 0
            is_best = metrics["val_mean_error_mm"] < position.best_val
            if is_best:
                position.best_val = metrics["val_mean_error_mm"]
            self._append_metrics(position.epoch, metrics)
            self._save("last", metrics)
            if is_best:
                self._save("best", metrics)
            self._emit("on_epoch", EpochDone(position.epoch - 1, config.epochs, metrics, is_best))
        return self._finish("completed")

    def _train_step(self, x_e: torch.Tensor, x_n: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        network, config = self.network, self.config
        outputs = network(x_e, x_n)
        losses: dict[str, float] = {}
        fake_logits = None
        if network.generator is not None and config.variant in ("full", "no-id") and not config.l2l_trains_encoder:
            outputs["z_g_l2l"] = network.generator(outputs["z_e"].detach())
        if self.d_optimizer is not None:
            z_e = outputs["z_e"].detach()
            z_g = outputs.get("z_g_l2l", outputs["z_g"])
            d_loss = discriminator_loss(network.discriminator(outputs["z_n"].detach(), z_e),
                                        network.discriminator(z_g.detach(), z_e))
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_optimizer.step()
            losses["d"] = float(d_loss.detach())
            fake_logits = network.discriminator(z_g, z_e)
        terms = network_losses(outputs, x_n, labels, config.weights, config.variant, fake_logits, config.gan_loss,
                               config.l2l_trains_encoder)
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        self.optimizer.step()
        if not torch.isfinite(terms.total):
            raise FacelabError("training diverged (the loss became NaN or infinite): lower the learning rate.")
        losses.update(terms.as_floats())
        return losses

    # ---- evaluation during training -----------------------------------------------------------
    @torch.no_grad()
    def predict(self, expressive_indices: np.ndarray) -> np.ndarray:
        """Predicted neutral vertices (k, n, 3) in mm for dataset meshes, in batches."""
        self.network.eval()
        out = []
        for start in range(0, len(expressive_indices), 64):
            rows = expressive_indices[start:start + 64]
            x_e = self.train_batches.normalise(self.dataset.vertices[rows])
            pred = self.network.neutralise(x_e)[0] * self.train_batches.std + self.train_batches.mean
            out.append(pred.cpu().numpy())
        self.network.train()
        return np.concatenate(out) if out else np.zeros((0, self.dataset.n_vertices, 3), np.float32)

    def validation_error(self) -> float:
        if not self.val_pairs:
            return float("nan")
        expressive = np.array([p.expressive for p in self.val_pairs])
        neutral = np.array([p.neutral for p in self.val_pairs])
        errors = per_vertex_error(self.predict(expressive), self.dataset.vertices[neutral])
        return float(errors.mean())

    def _preview(self) -> None:
        if self.preview_pair is None:
            return
        pair = self.preview_pair
        predicted = self.predict(np.array([pair.expressive]))[0]
        truth = np.asarray(self.dataset.vertices[pair.neutral], dtype=np.float32)
        self._emit("on_preview", Preview(self.position.global_step, self.dataset.pairs.index(pair),
                                         np.asarray(self.dataset.vertices[pair.expressive], dtype=np.float32),
                                         predicted, truth, per_vertex_error(predicted, truth).astype(np.float32)))

    # ---- outputs ---------------------------------------------------------------------------
    def checkpoint(self, metrics: dict[str, float] | None = None, with_optimizers: bool = True) -> Checkpoint:
        optimizers = {}
        if with_optimizers:
            optimizers["network"] = self.optimizer.state_dict()
            if self.d_optimizer is not None:
                optimizers["discriminator"] = self.d_optimizer.state_dict()
        dataset = self.dataset
        meta = {
            "network": self.network.config.to_dict(),
            "template_hash": dataset.topology_hash,
            "laplacian": self.config.laplacian,
            "variant": self.config.variant,
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
        }
        if meta["position"]["best_val"] == float("inf"):
            meta["position"]["best_val"] = None
        return Checkpoint(
            model_state=self.network.state_dict(), triangles=dataset.triangles,
            template=dataset.template().vertices, norm_mean=self.normalisation.mean, norm_std=self.normalisation.std,
            meta=meta, optimizer_states=optimizers,
        )

    def _save(self, kind: str, metrics: dict[str, float] | None) -> Path:
        path = self.run_dir / kind
        save_checkpoint(path, self.checkpoint(metrics))
        self._emit("on_checkpoint", CheckpointSaved(path, kind, self.position.epoch))
        return path

    def _append_metrics(self, epoch: int, metrics: dict[str, float]) -> None:
        path = self.run_dir / "metrics.csv"
        rows = []
        if path.exists():
            rows = [row for row in csv.DictReader(io.StringIO(path.read_text())) if int(row["epoch"]) < epoch]
        rows.append({"epoch": epoch, **{k: metrics.get(k, "") for k in METRIC_COLUMNS if k != "epoch"}})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buffer.getvalue())
        if self._tensorboard is not None:
            for key, value in metrics.items():
                if isinstance(value, float) and np.isfinite(value):
                    self._tensorboard.add_scalar(key, value, epoch)

    def _open_tensorboard(self) -> None:
        if not self.config.tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self._tensorboard = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def _finish(self, status: str) -> RunFinished:
        if status == "stopped" or not checkpoint_exists(self.run_dir / "last"):
            self._save("last", None)  # a stop mid-epoch leaves a valid checkpoint at this step
        last = self.run_dir / "last"
        best = self.run_dir / "best" if checkpoint_exists(self.run_dir / "best") else None
        best_val = None if self.position.best_val == float("inf") else self.position.best_val
        result = RunFinished(status, self.run_dir, self.position.epoch, best, last, best_val)
        self._emit("on_finished", result)
        return result
