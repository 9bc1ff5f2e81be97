"""The recogniser's warm-up fits R to the started network's codes and leaves the start alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facelab.training.checkpoint import load_checkpoint
from facelab.training.config import ExperimentalOptions, TrainConfig
from facelab.training.recognizer_warmup import warm_up_recognizer
from facelab.training.trainer import Trainer
from tests.conftest import make_tiny_dataset


def _config(warmup_samples: int = 0, **options) -> TrainConfig:
    return TrainConfig(data="tiny", epochs=1, batch_size=4, latent=8, tensorboard=False, preview_every=0,
                       num_threads=1, experimental=ExperimentalOptions(recognizer_warmup_samples=warmup_samples),
                       **options)


def _prepared(dataset, run_dir, init_checkpoint=None, **options) -> Trainer:
    trainer = Trainer(_config(**options), run_dir, dataset=dataset, init_checkpoint=init_checkpoint)
    trainer.prepare()
    return trainer


def _recognizer_loss(trainer: Trainer) -> float:
    """L_id (Eq. 5) over every training pair."""
    batches, network = trainer.train_batches, trainer.network
    x_e, x_n, labels = batches.rows(torch.arange(len(batches.pairs)).numpy())
    with torch.no_grad():
        z_g = network.translate(network.encode(x_e))
        return float(F.cross_entropy(network.recognizer(z_g), labels)
                     + F.cross_entropy(network.recognizer(network.encode(x_n)), labels))


def test_the_warm_up_fits_the_recogniser_before_the_first_step(tiny_dataset, tmp_path):
    cold = _prepared(tiny_dataset, tmp_path / "cold")  # off by default
    warm = _prepared(tiny_dataset, tmp_path / "warm", warmup_samples=6400)
    assert cold.recognizer_warmup_loss is None
    assert warm.recognizer_warmup_loss < 0.5 * _recognizer_loss(cold)
    assert _recognizer_loss(warm) < 0.5 * _recognizer_loss(cold)


def test_the_warm_up_leaves_the_start_and_the_random_state_alone(tiny_dataset, tmp_path):
    trainer = _prepared(tiny_dataset, tmp_path)
    network = trainer.network
    before = {name: value.clone() for name, value in network.state_dict().items()}
    random_state = torch.get_rng_state()
    assert warm_up_recognizer(network, trainer.train_batches, samples=64, steps=50) is not None
    after = network.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("recognizer.") for name in changed)
    assert torch.equal(torch.get_rng_state(), random_state)


def test_variants_without_a_recogniser_are_untouched(tiny_dataset, tmp_path):
    trainer = _prepared(tiny_dataset, tmp_path, variant="gca", warmup_samples=6400)
    assert trainer.recognizer_warmup_loss is None


def test_fine_tuning_warms_up_a_rebuilt_head_only(tiny_dataset, tmp_path):
    Trainer(_config(), tmp_path / "base", dataset=tiny_dataset).run()
    base = tmp_path / "base" / "last"
    same = _prepared(tiny_dataset, tmp_path / "same", init_checkpoint=base, warmup_samples=6400)
    assert same.recognizer_warmup_loss is None  # its trained head is kept as it is
    # As many subjects as the base model, other people: the head is rebuilt and warmed up.
    others = make_tiny_dataset(subjects=6, seed=5, prefix="new")
    tuned = _prepared(others, tmp_path / "tuned", init_checkpoint=base, warmup_samples=6400)
    assert tuned.subjects != same.subjects and len(tuned.subjects) == len(same.subjects)
    assert tuned.recognizer_warmup_loss is not None
    head = "recognizer.head.weight"
    assert not torch.equal(tuned.network.state_dict()[head], load_checkpoint(base).model_state[head])
