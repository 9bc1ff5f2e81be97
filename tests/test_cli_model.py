"""train, neutralize and evaluate end to end on a tiny dataset, bad inputs included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facelab.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, main
from facelab.data.layouts.generic import write_generic
from facelab.mesh import FaceMesh, read_mesh, read_ply_vertex_property, write_mesh
from tests.conftest import make_tiny_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-model")
    data = root / "data"
    write_generic(make_tiny_dataset(subjects=8), data, "ply", progress=False)
    # The paper's network: its latent steps compose to its neutralisation (see below).
    assert main(["train", "--data", str(data), "--out", str(root / "run"), "--variant", "full", "--epochs", "3",
                 "--batch-size", "4", "--threads", "1"]) == 0
    return root


def _pair(root):
    return root / "data" / "p07" / "expr_3.ply", root / "data" / "p07" / "neutral.ply"


def test_train_writes_a_run(trained):
    run = trained / "run"
    for name in ("config.json", "metrics.csv", "last.json", "last.safetensors", "best.json", "best.safetensors"):
        assert (run / name).is_file(), name


def test_train_refuses_to_overwrite_a_run(trained, capsys):
    before = (trained / "run" / "last.json").read_bytes()
    assert main(["train", "--data", str(trained / "data"), "--out", str(trained / "run"), "--epochs", "1"]) == EXIT_USER_ERROR
    assert "already holds a run" in capsys.readouterr().err
    assert (trained / "run" / "last.json").read_bytes() == before


def test_neutralize_with_ground_truth(trained, tmp_path, capsys):
    source, truth = _pair(trained)
    out = tmp_path / "pred.ply"
    assert main(["neutralize", str(source), "--ground-truth", str(truth), "--out", str(out),
                 "--checkpoint", str(trained / "run" / "best"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["output"] == str(out) and len(result["top5"]) == 5
    assert "expressions" not in result, "the paper's network reads no expression"
    predicted = read_mesh(out)
    error = np.linalg.norm(predicted.vertices - read_mesh(truth).vertices, axis=1)
    assert result["mean_error_mm"] == pytest.approx(error.mean(), rel=1e-4)
    assert result["max_error_mm"] == pytest.approx(error.max(), rel=1e-4)
    np.testing.assert_allclose(read_ply_vertex_property(out, "error"), error, rtol=1e-4, atol=1e-4)
    assert abs(sum(score for _, score in result["top5"])) <= 1.0 + 1e-6


def test_neutralize_rejects_a_mesh_of_another_template_and_writes_nothing(trained, tmp_path, capsys):
    source, _ = _pair(trained)
    mesh = read_mesh(source)
    write_mesh(FaceMesh(mesh.vertices[:100], mesh.triangles[mesh.triangles.max(axis=1) < 100]), tmp_path / "other.ply")
    out = tmp_path / "pred.ply"
    code = main(["neutralize", str(tmp_path / "other.ply"), "--out", str(out), "--checkpoint", str(trained / "run" / "best")])
    assert code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "expected 162 vertices in the template's order, got 100" in err
    assert not out.exists()


def test_corrupt_checkpoint_exits_2_without_traceback(trained, tmp_path):
    for suffix in (".json", ".safetensors"):
        (tmp_path / f"bad{suffix}").write_bytes((trained / "run" / f"best{suffix}").read_bytes())
    data = (tmp_path / "bad.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(data[: len(data) // 3])
    source, _ = _pair(trained)
    result = subprocess.run([sys.executable, "-m", "facelab", "neutralize", str(source), "--out", str(tmp_path / "o.ply"),
                             "--checkpoint", str(tmp_path / "bad")], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == EXIT_USER_ERROR
    assert "Traceback" not in result.stderr and "corrupt" in result.stderr
    assert not (tmp_path / "o.ply").exists()


def test_evaluate_json_contract(trained, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(trained / "run" / "best"), "--data", str(trained / "data"),
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("checkpoint", "data", "test_subjects", "mean_error_mm", "std_error_mm", "median_error_mm", "rank1",
                "rank5", "per_expression", "baselines"):
        assert key in result, key
    assert result["test_subjects"] == 2  # 30% of 8 subjects, rounded
    assert 0 <= result["rank1"] <= result["rank5"] <= 1
    assert set(result["per_expression"]) == {"expr_0", "expr_1", "expr_2", "expr_3"}
    assert result["baselines"]["do_nothing"]["mean_error_mm"] > 0
    assert {"mean_error_mm", "rank1"} <= set(result["baselines"]["linear"])
    printed = capsys.readouterr().out
    assert "facelab" in printed
    lines = {line.split()[0]: line for line in printed.splitlines() if line.startswith("  ")}
    assert lines["neutral_in_mm"].endswith(" mm") and lines["rank1_moved_probes"].endswith("%"), lines
    assert lines["blended_worse_than_input"].endswith("%")
    assert "expression read right" not in printed, "the paper's network reads no expression"


def test_evaluate_with_more_synthfaces_identities_keeps_the_test_pairs(tmp_path, monkeypatch):
    """--identities only adds training subjects (for the linear baseline's fit): the bundled model
    is measured on the default split's test pairs, so its error is the one recorded for it."""
    monkeypatch.setenv("FACELAB_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--identities", "110", "--json", str(out), "--no-robustness"]) == 0
    result = json.loads(out.read_text())
    recorded = json.loads((Path(__file__).parents[1] / "docs" / "results" / "bundled_model.json").read_text())
    recorded = recorded["evaluation"]
    assert "110 identities" in result["data"]
    assert (result["test_subjects"], result["test_pairs"]) == (recorded["test_subjects"], recorded["test_pairs"])
    assert result["mean_error_mm"] == pytest.approx(recorded["mean_error_mm"], abs=1e-5)
    assert result["baselines"]["linear"]["mean_error_mm"] < result["baselines"]["do_nothing"]["mean_error_mm"]


def test_resume_and_init_exclude_each_other(trained, capsys):
    assert main(["train", "--out", str(trained / "run"), "--resume", "--init", str(trained / "run" / "best")]) == EXIT_USER_ERROR
    assert "exclude each other" in capsys.readouterr().err


def test_ctrl_c_stops_training_with_a_valid_checkpoint(trained, tmp_path):
    import signal
    import time

    from facelab.training import load_checkpoint

    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "facelab", "train", "--data", str(trained / "data"), "--out",
                                str(run), "--epochs", "500", "--batch-size", "4", "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.time() + 60
    while not (run / "config.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED, err  # the shell's convention; the run is resumable
    assert out.strip().splitlines()[-1].startswith("stopped") and "Traceback" not in err
    assert load_checkpoint(run / "last").meta["position"]["global_step"] > 0


@pytest.mark.parametrize("flags, message", [(["--linear-ridge", "-1"], "ridge cannot be negative"),
                                            (["--weight-init", "linear", "--downsample", "2"], "full mesh")])
def test_bad_training_options_exit_2_with_one_sentence(trained, tmp_path, capsys, flags, message):
    code = main(["train", "--data", str(trained / "data"), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--batch-size", "4", "--threads", "1", *flags])
    assert code == EXIT_USER_ERROR
    assert message in capsys.readouterr().err


def test_a_negative_recognizer_warmup_is_refused_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "synth", "--out", str(tmp_path / "run"), "--recognizer-warmup", "-5"])
    assert exit_info.value.code == EXIT_USER_ERROR
    assert "non-negative integer" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_models_latent_steps_compose_to_its_neutralisation(trained):
    # Scripts that inspect the latent space (scripts/where_the_error_is.py) rely on
    # decode(translate(encode(F_e))) being exactly what neutralise() returns for the paper's
    # variants, in the template's frame (decode knows no pose: compared unaligned here).
    from facelab.model import FaceLabModel

    model = FaceLabModel.load(trained / "run", align=False)
    faces = np.stack([read_mesh(path).vertices for path in _pair(trained)])
    codes = model.encode(faces)
    assert codes.shape == (2, model.network.config.latent)
    assert model.encode(faces[0]).shape == (model.network.config.latent,)
    composed = model.decode(model.translate(codes))
    np.testing.assert_allclose(composed, model.neutralise(faces), atol=1e-5)
    assert model.decode(codes[0]).shape == faces[0].shape


def test_neutralise_and_embed_matches_the_two_separate_calls(trained):
    # The app and facelab evaluate take both from one pass; they must be what the two calls give.
    from facelab.model import FaceLabModel

    model = FaceLabModel.load(trained / "run")
    faces = np.stack([read_mesh(path).vertices for path in _pair(trained)])
    neutral, embedding = model.neutralise_and_embed(faces)
    np.testing.assert_allclose(neutral, model.neutralise(faces), atol=1e-5)
    np.testing.assert_allclose(embedding, model.identity_embedding(faces), atol=1e-5)
    one_neutral, one_embedding = model.neutralise_and_embed(faces[1])
    np.testing.assert_allclose(one_neutral, neutral[1], atol=1e-5)
    np.testing.assert_allclose(one_embedding, embedding[1], atol=1e-5)
    assert one_embedding.shape == (len(model.subjects),)


def test_train_loss_weights_reach_the_config_and_bad_ones_are_refused(tmp_path, capsys):
    from facelab.cli import build_parser, train_config_from_args

    args = build_parser().parse_args(["train", "--out", str(tmp_path / "run"), "--loss-weights", "id=0.1, gan=0.5"])
    weights = train_config_from_args(args).weights
    assert (weights.id, weights.gan, weights.l2l, weights.l1, weights.rec) == (0.1, 0.5, 0.5, 0.4, 2.0)
    for bad in ("idd=0.1", "id", "id=x"):
        with pytest.raises(SystemExit) as exited:
            main(["train", "--out", str(tmp_path / "run"), "--loss-weights", bad])
        assert exited.value.code == EXIT_USER_ERROR
        assert "NAME=VALUE pairs with NAME one of l2l, l1, gan, id, rec" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "run"),
                 "--loss-weights", "rec=-1"]) == EXIT_USER_ERROR
    assert "loss weight rec must be zero or positive" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_training_on_data_without_pairs_exits_2_and_leaves_no_run(tmp_path, capsys):
    neutrals = make_tiny_dataset(subjects=4, expressions=0)
    write_generic(neutrals, tmp_path / "neutrals", "ply", progress=False)
    for weight_init in ("random", "linear"):
        out = tmp_path / f"run-{weight_init}"
        assert main(["train", "--data", str(tmp_path / "neutrals"), "--out", str(out), "--epochs", "1",
                     "--weight-init", weight_init, "--threads", "1"]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert "has no expressive/neutral pairs among its" in err and err.count("facelab: error:") == 1
        assert not out.exists()


def test_no_align_feeds_the_mesh_as_it_is(trained, tmp_path, capsys):
    expressive, truth = _pair(trained)
    moved = tmp_path / "moved.ply"
    mesh = read_mesh(expressive)
    write_mesh(mesh.with_vertices(mesh.vertices + np.float32(30.0)), moved)
    aligned, raw = tmp_path / "aligned.ply", tmp_path / "raw.ply"
    model = ["--checkpoint", str(trained / "run")]
    assert main(["neutralize", str(moved), "--out", str(aligned), *model]) == 0
    assert main(["neutralize", str(moved), "--out", str(raw), "--no-align", *model]) == 0
    assert main(["neutralize", str(expressive), "--out", str(tmp_path / "still.ply"), *model]) == 0
    still = read_mesh(tmp_path / "still.ply").vertices
    # Aligned, a shifted mesh gives the same prediction shifted; unaligned, it does not.
    np.testing.assert_allclose(read_mesh(aligned).vertices, still + 30.0, atol=1e-2)
    assert np.abs(read_mesh(raw).vertices - (still + 30.0)).max() > 0.5


def test_a_run_without_held_out_validation_says_so(tmp_path, capsys):
    data = tmp_path / "data"
    write_generic(make_tiny_dataset(subjects=3, expressions=2), data, "ply", progress=False)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--batch-size", "2", "--threads", "1"]) == 0
    assert "measured on the training subjects" in capsys.readouterr().out
