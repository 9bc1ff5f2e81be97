"""The paper-tables benchmark's bookkeeping: reusing finished runs, and the rows it writes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from benchmarks.paper_tables import (METHODS, ROW_NAMES, evaluation_key, finished_run_minutes, interrupted_run,
                                     markdown, read_record, save_evaluation, saved_evaluation, write_record)
from facelab.training import TrainConfig, Trainer, TrainingCallback
from tests.conftest import make_tiny_dataset


def _config(**overrides) -> TrainConfig:
    values = dict(data="tiny", epochs=1, batch_size=4, seed=0, tensorboard=False, preview_every=0, num_threads=1)
    values.update(overrides)
    return TrainConfig(**values)


def test_a_finished_run_is_reused_only_with_the_same_configuration(tmp_path):
    run = tmp_path / "run"
    Trainer(_config(), run, dataset=make_tiny_dataset()).run()
    minutes = finished_run_minutes(run, _config())
    assert minutes is not None and minutes > 0
    assert finished_run_minutes(run, _config(seed=1)) is None
    assert finished_run_minutes(run, _config(epochs=2)) is None  # not finished for a longer budget
    assert finished_run_minutes(tmp_path / "nothing", _config()) is None
    saved = json.loads((run / "config.json").read_text())
    del saved["fusion_ridge"]  # a run saved before a field existed: the field's default applies
    (run / "config.json").write_text(json.dumps(saved))
    assert finished_run_minutes(run, _config()) == minutes


def test_a_run_killed_mid_epoch_counts_as_interrupted_not_finished(tmp_path):
    class Killed(TrainingCallback):
        def on_step(self, event):
            if event.global_step == 2:
                raise SystemExit("killed")

    run, config = tmp_path / "run", _config(checkpoint_minutes=1e-9)
    with pytest.raises(SystemExit):
        Trainer(config, run, [Killed()], dataset=make_tiny_dataset()).run()
    assert finished_run_minutes(run, config) is None
    assert interrupted_run(run, config) and not interrupted_run(run, _config(checkpoint_minutes=1e-9, seed=1))
    assert not interrupted_run(tmp_path / "nothing", config)


def test_a_saved_evaluation_is_read_back_only_for_the_same_checkpoint_and_test_subjects(tmp_path):
    run = tmp_path / "run"
    dataset = make_tiny_dataset()
    Trainer(_config(), run, dataset=dataset).run()
    split = dataset.split()
    assert saved_evaluation(run, evaluation_key(run, split)) is None
    save_evaluation(run, evaluation_key(run, split), {"mean_error_mm": 0.5})
    assert saved_evaluation(run, evaluation_key(run, split)) == {"mean_error_mm": 0.5}
    other = dataclasses.replace(split, test_subjects=split.test_subjects[1:])
    assert saved_evaluation(run, evaluation_key(run, other)) is None  # another test split: evaluated again
    (run / "best.safetensors").write_bytes((run / "best.safetensors").read_bytes() + b" ")
    assert saved_evaluation(run, evaluation_key(run, split)) is None  # the checkpoint changed: evaluated again


def test_a_record_stands_for_its_run_in_another_checkout_but_not_for_another_run(tmp_path):
    run = tmp_path / "run"
    dataset = make_tiny_dataset()
    config = _config(data="/checkout-a/shared/model.npz")
    Trainer(_config(), run, dataset=dataset).run()
    split = dataset.split()
    record = tmp_path / "records" / "X-full-seed0.json"
    stamp = {"generated_by": "python -m benchmarks.paper_tables --records records", "commit": "abc"}
    write_record(record, config, evaluation_key(run, split), {"mean_error_mm": 0.5, "train_minutes": 2.0}, stamp)
    read = read_record(record, _config(data="/elsewhere/shared/model.npz"), split)
    assert read["evaluation"] == {"mean_error_mm": 0.5} and read["train_minutes"] == 2.0
    assert read["commit"] == "abc" and read["generated_by"] == stamp["generated_by"]
    assert read_record(record, _config(data="/checkout-a/shared/other.npz"), split) is None
    assert read_record(record, dataclasses.replace(config, seed=1), split) is None
    other = dataclasses.replace(split, test_subjects=split.test_subjects[1:])
    assert read_record(record, config, other) is None
    assert read_record(tmp_path / "records" / "absent.json", config, split) is None


def _row(error: float) -> dict:
    spread = lambda value: {"mean": value, "std": 0.0, "min": value, "max": value}  # noqa: E731
    return {"seeds": {}, "mean_error_mm_over_seeds": spread(error), "rank1_over_seeds": spread(1.0),
            "worse_than_input_over_seeds": spread(0.1)}


def test_every_method_gets_its_row_and_its_share_of_doing_nothing():
    rows = {method: _row(0.1 * (i + 1)) for i, method in enumerate(METHODS)}
    results = {"generated_by": "python -m benchmarks.paper_tables", "commit": "abc", "epochs": 1, "batch_size": 16,
               "seeds": [0], "datasets": {"X": {
                   "name": "X data", "vertices": 10, "test_subjects": 3, "variants": rows, "linear_start_mm": None,
                   "baselines": {"do_nothing": {"mean_error_mm": 1.0},
                                 "linear": {"mean_error_mm": 0.5, "rank1": 1.0, "worse_than_input": 0.0}}}}}
    text = markdown(results)
    for i, method in enumerate(METHODS):
        assert f"| {ROW_NAMES[method]} | {0.1 * (i + 1):.3f} |" in text
        assert f"| {ROW_NAMES[method]} | {10.0 * (i + 1):.1f} |" in text  # share of doing nothing, %
    assert METHODS["identity-preserving-ridge"] == ("identity-preserving", {"alignment": "similarity",
                                                                            "fusion_ridge": True})
