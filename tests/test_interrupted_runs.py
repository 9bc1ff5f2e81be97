"""A run interrupted between its writes resumes with best, last, metrics.csv and the report in agreement."""

from __future__ import annotations

import csv

import pytest

from facelab.training import TrainConfig, Trainer, load_checkpoint


def _config(**overrides) -> TrainConfig:
    values = dict(data="tiny", variant="full", epochs=2, batch_size=4, lr=2e-3, seed=3, tensorboard=False, preview_every=0,
                  num_threads=1)
    values.update(overrides)
    return TrainConfig(**values)


def _epochs_in_metrics(run):
    return [int(row["epoch"]) for row in csv.DictReader((run / "metrics.csv").open())]


def _best_is_consistent(run, result):
    best = load_checkpoint(run / "best", with_optimizers=False)
    assert best.meta["metrics"]["val_mean_error_mm"] == result.best_val_error_mm
    assert result.best_checkpoint == run / "best"


def test_a_failure_while_saving_last_leaves_no_metrics_row_and_resume_agrees(tmp_path, tiny_dataset, monkeypatch):
    run = tmp_path / "run"
    save = Trainer._save

    def failing_save(self, kind, metrics):
        if kind == "last" and self.position.epoch == 2 and metrics is not None:
            raise OSError("simulated kill while writing last")
        return save(self, kind, metrics)

    monkeypatch.setattr(Trainer, "_save", failing_save)
    with pytest.raises(OSError, match="simulated kill"):
        Trainer(_config(), run, dataset=tiny_dataset).run()
    monkeypatch.setattr(Trainer, "_save", save)
    assert _epochs_in_metrics(run) == [1]  # epoch 2 was never saved as last: no row for it
    assert load_checkpoint(run / "last").meta["position"]["epoch"] == 1

    result = Trainer(_config(), run, dataset=tiny_dataset, resume=True).run()
    assert result.status == "completed" and _epochs_in_metrics(run) == [1, 2]
    _best_is_consistent(run, result)


def test_resume_rebuilds_a_missing_best_from_last_when_last_is_the_best(tmp_path, tiny_dataset):
    run = tmp_path / "run"
    first = Trainer(_config(epochs=1), run, dataset=tiny_dataset).run()
    for suffix in (".json", ".safetensors"):  # as a kill between an older facelab's two saves left it
        (run / f"best{suffix}").unlink()
    result = Trainer(_config(epochs=1), run, dataset=tiny_dataset, resume=True).run()  # nothing left to train
    assert (run / "best.json").is_file()
    _best_is_consistent(run, result)
    assert result.best_val_error_mm == first.best_val_error_mm


def test_resume_chooses_the_best_again_when_it_cannot_be_rebuilt(tmp_path, tiny_dataset):
    run = tmp_path / "run"
    Trainer(_config(epochs=1), run, dataset=tiny_dataset).run()
    last = load_checkpoint(run / "last")
    last.meta["position"]["best_val"] = 0.0  # a best epoch that last does not hold
    last.meta["metrics"]["val_mean_error_mm"] = 0.5
    from facelab.training import save_checkpoint

    save_checkpoint(run / "last", last)
    for suffix in (".json", ".safetensors"):
        (run / f"best{suffix}").unlink()
    result = Trainer(_config(epochs=2), run, dataset=tiny_dataset, resume=True).run()
    _best_is_consistent(run, result)
    assert load_checkpoint(run / "best").meta["position"]["epoch"] == 2


def test_partial_temporary_files_of_a_killed_write_are_removed_on_resume(tmp_path, tiny_dataset):
    run = tmp_path / "run"
    Trainer(_config(epochs=1), run, dataset=tiny_dataset).run()
    partial = [run / ".last.safetensors.tmp-k1ll3d.safetensors", run / ".last.json.tmp-k1ll3d.json"]
    for path in partial:
        path.write_bytes(b"half a file")
    Trainer(_config(epochs=2), run, dataset=tiny_dataset, resume=True).run()
    assert not any(path.exists() for path in partial)
    assert not list(run.glob(".*.tmp-*"))


def test_a_run_folder_without_best_says_which_checkpoint_it_uses(tmp_path, tiny_dataset, capsys):
    import numpy as np

    from facelab.cli import main
    from facelab.mesh import FaceMesh, write_mesh

    run = tmp_path / "run"
    Trainer(_config(epochs=1), run, dataset=tiny_dataset).run()
    for suffix in (".json", ".safetensors"):
        (run / f"best{suffix}").unlink()
    source = tmp_path / "face.ply"
    write_mesh(FaceMesh(np.asarray(tiny_dataset.vertices[1]), tiny_dataset.triangles), source)
    assert main(["neutralize", str(source), "--out", str(tmp_path / "out.ply"), "--checkpoint", str(run)]) == 0
    assert "has no 'best' checkpoint: using 'last'" in capsys.readouterr().err
