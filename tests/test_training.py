"""The trainer: losses fall, resume equals an uninterrupted run, stop, fine-tuning, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facelab.errors import FacelabError
from facelab.training import (
    CheckpointError,
    TrainConfig,
    Trainer,
    TrainingCallback,
    TrainingControl,
    load_checkpoint,
    save_checkpoint,
)
from facelab.training.config import ExperimentalOptions
from facelab.training.losses import network_losses
from tests.conftest import make_tiny_dataset


class Recorder(TrainingCallback):
    def __init__(self):
        self.events = []

    def on_preparing(self, event):
        self.events.append(("preparing", event))

    def on_run_started(self, event):
        self.events.append(("started", event))

    def on_step(self, event):
        self.events.append(("step", event))

    def on_epoch(self, event):
        self.events.append(("epoch", event))

    def on_checkpoint(self, event):
        self.events.append(("checkpoint", event))

    def on_preview(self, event):
        self.events.append(("preview", event))

    def on_finished(self, event):
        self.events.append(("finished", event))

    def of(self, kind):
        return [e for k, e in self.events if k == kind]


def _config(**overrides) -> TrainConfig:
    values = dict(data="tiny", variant="full", epochs=2, batch_size=4, lr=2e-3, seed=3, tensorboard=False, preview_every=5,
                  num_threads=1)
    values.update(overrides)
    return TrainConfig(**values)


def test_training_lowers_the_loss_and_writes_a_run(tmp_path, tiny_dataset):
    recorder = Recorder()
    # From a random start: the linear one already sits near this tiny set's optimum.
    result = Trainer(_config(epochs=8, weight_init="random"), tmp_path / "run", [recorder], dataset=tiny_dataset).run()
    assert result.status == "completed" and result.epochs_done == 8
    steps = recorder.of("step")
    first = np.mean([s.losses["rec"] for s in steps[:3]])
    last = np.mean([s.losses["rec"] for s in steps[-3:]])
    assert last < 0.7 * first
    epochs = recorder.of("epoch")
    assert len(epochs) == 8 and epochs[-1].metrics["val_mean_error_mm"] < epochs[0].metrics["val_mean_error_mm"]
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["variant"] == "full"
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 1 + 8
    for name in ("last", "best"):
        assert (run / f"{name}.json").is_file() and (run / f"{name}.safetensors").is_file()
    previews = recorder.of("preview")
    assert previews and previews[0].predicted.shape == (tiny_dataset.n_vertices, 3)
    np.testing.assert_allclose(previews[0].error, np.linalg.norm(previews[0].predicted - previews[0].ground_truth, axis=1), rtol=1e-5)
    # set-up stages (choosing the alignment) come first, then the run itself
    events = [name for name, _ in recorder.events if name != "preparing"]
    assert events[0] == "started" and events[-1] == "finished"


def test_slow_set_up_stages_are_reported_before_the_run_starts(tmp_path, tiny_dataset):
    # The GUI's busy bar and the CLI name what the first minute of a big run is spent on.
    recorder = Recorder()
    config = _config(epochs=1, experimental=ExperimentalOptions(recognizer_warmup_samples=8, recognizer_warmup_steps=2))
    control = TrainingControl()

    class StopAtOnce(TrainingCallback):
        def on_step(self, event):
            control.stop()

    Trainer(config, tmp_path / "run", [recorder, StopAtOnce()], control=control, dataset=tiny_dataset).run()
    kinds = [kind for kind, _ in recorder.events]
    stages = [event.stage for event in recorder.of("preparing")]
    assert stages[0] == "choosing the alignment on the validation subjects" and stages[1].startswith("alignment ")
    assert stages[2:] == ["fitting the linear start", "warming up the recogniser"]
    assert kinds.index("started") == len(stages)
    resumed = Recorder()
    Trainer(config, tmp_path / "run", [resumed], dataset=tiny_dataset, resume=True).run()
    assert resumed.of("preparing") == [] and resumed.of("finished")


class StopAfterFirstEpoch(TrainingCallback):
    def __init__(self, control):
        self.control = control

    def on_epoch(self, event):
        self.control.stop()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_dataset):
    straight = Trainer(_config(epochs=2), tmp_path / "a", dataset=tiny_dataset)
    straight.run()
    control = TrainingControl()
    stopped = Trainer(_config(epochs=2), tmp_path / "b", [StopAfterFirstEpoch(control)], control=control,
                      dataset=tiny_dataset).run()
    assert stopped.status == "stopped" and stopped.epochs_done == 1
    resumed = Trainer(_config(epochs=2), tmp_path / "b", dataset=tiny_dataset, resume=True)
    resumed.run()
    a, b = straight.network.state_dict(), resumed.network.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_stop_mid_epoch_leaves_a_valid_checkpoint_and_resume_finishes(tmp_path, tiny_dataset):
    control = TrainingControl()

    class StopAtStep(TrainingCallback):
        def on_step(self, event):
            if event.global_step == 3:
                control.stop()

    result = Trainer(_config(epochs=3), tmp_path / "run", [StopAtStep()], control=control, dataset=tiny_dataset).run()
    assert result.status == "stopped"
    checkpoint = load_checkpoint(tmp_path / "run" / "last")
    assert checkpoint.meta["position"]["global_step"] == 3
    finished = Trainer(_config(epochs=3), tmp_path / "run", dataset=tiny_dataset, resume=True).run()
    assert finished.status == "completed" and finished.epochs_done == 3


class KilledAtStep(TrainingCallback):
    """Ends the process's run without a stop request, as a closed session or a crash would."""

    def __init__(self, step):
        self.step = step

    def on_step(self, event):
        if event.global_step == self.step:
            raise SystemExit("killed")


def test_a_killed_run_resumes_from_its_timed_mid_epoch_checkpoint_as_if_never_killed(tmp_path, tiny_dataset):
    straight = Trainer(_config(epochs=2), tmp_path / "a", dataset=tiny_dataset)
    straight.run()
    steps = straight.train_batches.steps_per_epoch
    assert steps >= 3, "the tiny dataset must give an epoch of several steps for this test"
    # A save after every step (a moment's worth of minutes), killed in the first epoch's middle.
    config = _config(epochs=2, checkpoint_minutes=1e-9)
    with pytest.raises(SystemExit):
        Trainer(config, tmp_path / "b", [KilledAtStep(2)], dataset=tiny_dataset).run()
    saved = load_checkpoint(tmp_path / "b" / "last", with_optimizers=False).meta["position"]
    assert (saved["epoch"], saved["step"], saved["epoch_loss_steps"]) == (0, 2, 2) and saved["epoch_seconds"] > 0
    resumed = Trainer(config, tmp_path / "b", dataset=tiny_dataset, resume=True)
    resumed.run()
    a, b = straight.network.state_dict(), resumed.network.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    # The interrupted epoch's metrics row holds the losses of all its steps, not only the resumed ones.
    rows = [(tmp_path / run / "metrics.csv").read_text().splitlines() for run in ("a", "b")]
    header = rows[0][0].split(",")
    for straight_row, resumed_row in zip(rows[0][1:], rows[1][1:], strict=True):
        for name, x, y in zip(header, straight_row.split(","), resumed_row.split(",")):
            if name != "seconds":
                assert float(x) == pytest.approx(float(y), rel=1e-5, abs=1e-7), name
    # ... and its seconds include those spent before the kill
    seconds = float(rows[1][1].split(",")[header.index("seconds")])
    assert seconds >= saved["epoch_seconds"]


def test_a_timed_save_never_stores_weights_that_are_not_finite(tmp_path, tiny_dataset):
    trainer = Trainer(_config(epochs=1, checkpoint_minutes=1e-9), tmp_path / "run", dataset=tiny_dataset)
    trainer.prepare()
    trainer.run_dir.mkdir(parents=True)
    trainer._last_saved = 0.0
    with torch.no_grad():
        next(trainer.network.parameters()).view(-1)[0] = float("nan")   # a step's infinite gradient did this
    trainer._save_on_schedule()
    assert not (tmp_path / "run" / "last.json").exists()
    with torch.no_grad():
        next(trainer.network.parameters()).view(-1)[0] = 0.0
    trainer._last_saved = 0.0
    trainer._save_on_schedule()
    assert (tmp_path / "run" / "last.json").exists()


def test_without_timed_checkpoints_a_killed_first_epoch_leaves_nothing_to_resume(tmp_path, tiny_dataset):
    with pytest.raises(SystemExit):
        Trainer(_config(epochs=1, checkpoint_minutes=0), tmp_path / "run", [KilledAtStep(2)],
                dataset=tiny_dataset).run()
    with pytest.raises(FacelabError, match="no run to resume"):
        Trainer(_config(epochs=1), tmp_path / "run", dataset=tiny_dataset, resume=True).run()


def test_fine_tuning_on_new_subjects_rebuilds_the_recognizer_head(tmp_path, tiny_dataset):
    Trainer(_config(epochs=1), tmp_path / "base", dataset=tiny_dataset).run()
    base = load_checkpoint(tmp_path / "base" / "best")
    others = make_tiny_dataset(subjects=9, seed=5, prefix="new")
    tuned = Trainer(_config(epochs=1, lr=1e-12), tmp_path / "tuned", dataset=others, init_checkpoint=tmp_path / "base" / "best")
    tuned.run()
    assert tuned.subjects[0].startswith("new") and len(tuned.subjects) != len(base.meta["subjects"])
    head = [k for k, v in tuned.network.state_dict().items() if k.startswith("recognizer") and v.shape[0] == len(tuned.subjects)]
    assert head, "the recognizer's output layer must have one row per new subject"
    # the autoencoder starts from the base model (lr ~ 0 keeps it there)
    key = next(k for k in base.model_state if k.startswith("encoder"))
    torch.testing.assert_close(tuned.network.state_dict()[key], base.model_state[key], atol=1e-6, rtol=0)


def test_fine_tuning_on_another_template_is_a_clear_error(tmp_path, tiny_dataset):
    import trimesh

    from facelab.data import FaceDataset

    Trainer(_config(epochs=1), tmp_path / "base", dataset=tiny_dataset).run()
    sphere = trimesh.creation.icosphere(subdivisions=1)
    other = FaceDataset("other", "generic", np.repeat(np.asarray(sphere.vertices, np.float32)[None], 6, axis=0),
                        sphere.faces, [r for r in tiny_dataset.records[:6]])
    with pytest.raises(FacelabError, match="another template"):
        Trainer(_config(epochs=1), tmp_path / "x", dataset=other, init_checkpoint=tmp_path / "base" / "best").run()


@pytest.mark.parametrize("variant", ["no-l2l", "no-id", "gca", "full-l2l-trains-encoder"])
def test_every_variant_trains(tmp_path, tiny_dataset, variant):
    options = {"variant": variant}
    if variant.startswith("full"):
        options = {"variant": "full", "experimental": ExperimentalOptions(l2l_trains_encoder=True)}
    trainer = Trainer(_config(epochs=1, **options), tmp_path / variant, dataset=tiny_dataset)
    result = trainer.run()
    assert result.status == "completed"
    assert (trainer.network.discriminator is None) == (variant in ("no-l2l", "gca"))


def test_checkpoint_round_trip(tmp_path, tiny_dataset):
    trainer = Trainer(_config(epochs=1), tmp_path / "run", dataset=tiny_dataset)
    trainer.run()
    original = trainer.checkpoint({"val_mean_error_mm": 1.5})
    save_checkpoint(tmp_path / "copy", original)
    loaded = load_checkpoint(tmp_path / "copy.json")
    for key, value in original.model_state.items():
        assert torch.equal(loaded.model_state[key], value)
    np.testing.assert_array_equal(loaded.triangles, tiny_dataset.triangles)
    np.testing.assert_array_equal(loaded.norm_std, original.norm_std)
    assert loaded.meta["subjects"] == original.meta["subjects"]
    assert loaded.meta["network"]["laplacian_kind"] == "combinatorial"
    assert loaded.meta["template_hash"] == tiny_dataset.topology_hash
    state = loaded.optimizer_states["network"]
    torch.testing.assert_close(state["state"][0]["exp_avg"], original.optimizer_states["network"]["state"][0]["exp_avg"])
    trainer.optimizer.load_state_dict(state)  # loads back into a live optimiser


def test_a_checkpoint_write_on_a_full_disk_keeps_the_previous_checkpoint(tmp_path, tiny_dataset, monkeypatch):
    from pathlib import Path

    from facelab.errors import FacelabError

    trainer = Trainer(_config(epochs=1), tmp_path / "run", dataset=tiny_dataset)
    trainer.run()
    save_checkpoint(tmp_path / "kept", trainer.checkpoint({"val_mean_error_mm": 1.5}))
    before = {p.name: p.read_bytes() for p in tmp_path.glob("kept.*")}
    write_text = Path.write_text

    def full_disk(self, *args, **kwargs):  # the JSON half fails after the tensors were written
        if ".tmp-" in self.name:
            raise OSError(28, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(FacelabError, match=r"cannot write .*kept\.json \(No space left on device\)"):
        save_checkpoint(tmp_path / "kept", trainer.checkpoint({"val_mean_error_mm": 0.5}))
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.glob("kept.*")} == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert load_checkpoint(tmp_path / "kept").meta["metrics"]["val_mean_error_mm"] == 1.5


@pytest.mark.parametrize("damage,match", [
    ("truncate_tensors", "corrupt"),
    ("garbage_json", "corrupt"),
    ("foreign_json", "not a facelab checkpoint"),
    ("missing_tensors", "missing"),
])
def test_damaged_checkpoints_are_clear_errors(tmp_path, tiny_dataset, damage, match):
    trainer = Trainer(_config(epochs=1), tmp_path / "run", dataset=tiny_dataset)
    trainer.run()
    base = tmp_path / "run" / "last"
    tensors, meta = base.with_suffix(".safetensors"), base.with_suffix(".json")
    if damage == "truncate_tensors":
        tensors.write_bytes(tensors.read_bytes()[:1000])
    elif damage == "garbage_json":
        meta.write_text("{not json")
    elif damage == "foreign_json":
        meta.write_text(json.dumps({"model": "something else"}))
    else:
        tensors.unlink()
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(base)
    assert "\n" not in str(info.value)


def test_resume_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(FacelabError, match="no run to resume"):
        Trainer(_config(), tmp_path / "empty", resume=True)


def test_resuming_a_run_with_another_optimiser_layout_is_a_clear_error(tmp_path, tiny_dataset):
    # Runs saved before the per-layer learning rates had one parameter group.
    run = tmp_path / "old"
    Trainer(_config(epochs=1), run, dataset=tiny_dataset).run()
    checkpoint = load_checkpoint(run / "last")
    state = checkpoint.optimizer_states["network"]
    groups = state["param_groups"]
    groups[0]["params"] = [index for group in groups for index in group["params"]]
    del groups[1:]
    save_checkpoint(run / "last", checkpoint)
    with pytest.raises(FacelabError, match="older facelab"):
        Trainer(_config(epochs=2), run, dataset=tiny_dataset, resume=True).prepare()


def test_the_reconstruction_loss_is_a_millimetre_error_at_the_normalised_scale(tiny_dataset, tmp_path):
    # rec_space="mm" (the default): L_rec is the mean absolute coordinate error of the
    # reconstructions in mm, divided by the mean coordinate std (the normalised loss's scale,
    # which the loss weights were tuned at; see docs/method.md).
    trainer = Trainer(_config(variant="gca"), tmp_path / "run", dataset=tiny_dataset)
    trainer.prepare()
    x_e, x_n, labels = trainer.train_batches.batch(0, 0)
    batches = trainer.train_batches
    with torch.no_grad():
        outputs = trainer.network(x_e, x_n)
        terms = network_losses(outputs, x_n, labels, trainer.config.weights, "gca", vertex_weights=trainer.rec_weights)
    in_mm = ((outputs["rec_e"] * batches.std + batches.mean) - (x_n * batches.std + batches.mean)).abs().mean()
    assert float(terms.rec) == pytest.approx(float(in_mm / batches.std.mean()), rel=1e-5)


def test_the_generator_can_learn_at_a_rate_of_its_own(tiny_dataset, tmp_path):
    def after_steps(**overrides):
        trainer = Trainer(_config(**overrides), tmp_path / f"run{len(overrides)}", dataset=tiny_dataset)
        trainer.prepare()
        before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
        for index in range(3):
            trainer.train_step(*trainer.train_batches.batch(0, index))
        after = trainer.network.state_dict()
        return {prefix: any(not torch.equal(before[k], after[k]) for k in after if k.startswith(prefix))
                for prefix in ("generator.", "encoder.", "decoder.")}

    assert after_steps() == {"generator.": True, "encoder.": True, "decoder.": True}
    assert after_steps(generator_lr=0.0) == {"generator.": False, "encoder.": True, "decoder.": True}
    with pytest.raises(FacelabError, match="generator's learning rate"):
        _config(generator_lr=-1e-3).validate()


def test_the_l1_reduction_reaches_the_training_step(tiny_dataset, tmp_path):
    def first_step(**overrides):
        trainer = Trainer(_config(**overrides), tmp_path / f"run{len(overrides)}", dataset=tiny_dataset)
        trainer.prepare()
        batch = trainer.train_batches.batch(0, 0)
        return trainer.train_step(*batch), batch[1][0].numel()

    mean, elements = first_step()
    summed, _ = first_step(l1_reduction="sum")
    assert summed["rec"] == pytest.approx(mean["rec"] * elements, rel=1e-4)
    assert summed["id"] == pytest.approx(mean["id"], rel=1e-4)
    with pytest.raises(FacelabError, match="L1 reduction"):
        _config(l1_reduction="max").validate()


def test_a_config_saved_before_the_experimental_section_reads_its_options_there():
    # Runs and checkpoints of earlier versions kept these options at the top level of config.json.
    saved = {**_config().to_dict(), "recognizer_warmup_samples": 64, "gan_loss": "minimax", "no_longer_known": 1}
    del saved["experimental"]
    config = TrainConfig.from_dict(saved)
    assert (config.experimental.recognizer_warmup_samples, config.experimental.gan_loss) == (64, "minimax")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(FacelabError, match="GAN loss"):
        TrainConfig.from_dict({**saved, "gan_loss": "hinge"}).validate()


def test_the_validation_error_is_scored_a_chunk_at_a_time_and_is_the_mean_over_every_pair(tmp_path, tiny_dataset,
                                                                                         monkeypatch):
    """Scoring streams the validation pairs (a large dataset's would not fit in memory at once)
    and still gives the mean per-vertex error over all of them."""
    import facelab.training.trainer as trainer_module
    from facelab.evaluation.metrics import per_vertex_error

    trainer = Trainer(_config(epochs=1), tmp_path / "run", dataset=tiny_dataset)
    trainer.prepare()
    pairs = trainer.val_pairs
    assert len(pairs) > 3
    predicted = trainer.predict(np.array([p.expressive for p in pairs]))
    expected = per_vertex_error(predicted, tiny_dataset.vertices[np.array([p.neutral for p in pairs])]).mean()
    chunks = []
    predict = trainer.predict
    monkeypatch.setattr(trainer, "predict", lambda rows: chunks.append(len(rows)) or predict(rows))
    monkeypatch.setattr(trainer_module, "VALIDATION_CHUNK", 3)
    assert trainer.validation_error() == pytest.approx(expected, rel=1e-6)
    assert max(chunks) == 3 and sum(chunks) == len(pairs)
