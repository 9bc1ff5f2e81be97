"""The command line: inspect, synth, and bad input (exit status 2, one sentence, nothing written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from facelab.cli import EXIT_USER_ERROR, main
from facelab.mesh import write_mesh


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facelab", *argv], capture_output=True, text=True, env=os.environ.copy())


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("synth", "inspect", "import-ict"):
        assert command in out


def test_inspect_a_mesh(tmp_path, grid_mesh, capsys):
    write_mesh(grid_mesh, tmp_path / "face.ply", binary=False)
    assert main(["inspect", str(tmp_path / "face.ply"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "PLY (ASCII)"
    assert info["vertices"] == 30 and info["triangles"] == 40


def test_bad_mesh_exits_2_with_one_sentence_and_no_traceback(tmp_path, grid_mesh):
    write_mesh(grid_mesh, tmp_path / "full.ply")
    data = (tmp_path / "full.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[: len(data) // 2])
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _run("inspect", str(tmp_path / "cut.ply"))
    assert result.returncode == EXIT_USER_ERROR
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facelab: error:") and "truncated" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("content,expected", [
    (b"", "is empty"),
    (b"v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n", "NaN or infinite"),
    (b"v 0 0 0\nv 1 0 0\nf 1 2 9\n", "refer to"),
])
def test_bad_obj_messages(tmp_path, capsys, content, expected):
    (tmp_path / "bad.obj").write_bytes(content)
    assert main(["inspect", str(tmp_path / "bad.obj")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_missing_path(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nothing")]) == EXIT_USER_ERROR
    assert "does not exist" in capsys.readouterr().err


def test_folder_in_no_known_layout(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["inspect", str(tmp_path)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "no known dataset layout" in err and "CoMA" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_path_the_system_refuses_exits_2_with_one_sentence(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    assert main(["synth", "--out", str(tmp_path / "a_file" / "synth"), "--identities", "2"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("facelab: error: ") and "a_file" in err and err.count("\n") == 1
    assert (tmp_path / "a_file").read_text() == "not a folder"


def test_only_path_errors_become_sentences():
    import errno

    from facelab.errors import is_path_error, os_error_sentence

    full = OSError(errno.ENOSPC, "No space left on device", "/data/run/last.json")
    assert is_path_error(full) and is_path_error(PermissionError(errno.EACCES, "Permission denied"))
    assert os_error_sentence(full) == "/data/run/last.json: No space left on device: expected a path you can read and write."
    # An I/O error of the device, or an OSError raised by a bug, keeps its traceback.
    assert not is_path_error(OSError(errno.EIO, "Input/output error"))
    assert not is_path_error(OSError("some library failed to load"))
    assert not is_path_error(ValueError("not an OSError"))


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["synth", "--identities", "0", "--out", "x"])
    assert info.value.code == 2


def test_synth_writes_a_dataset_that_inspect_reads(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["synth", "--out", str(out), "--identities", "3", "--seed", "5"]) == 0
    capsys.readouterr()
    assert (out / "manifest.csv").is_file()
    assert len(list(out.glob("*/*.ply"))) == 3 * 37
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["subjects"] == 3 and info["meshes"] == 111 and info["pairs"] == 108
    assert info["layout"] == "generic"


def test_synth_refuses_a_foreign_non_empty_folder(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("precious")
    assert main(["synth", "--out", str(tmp_path), "--identities", "2"]) == EXIT_USER_ERROR
    assert "facelab: error:" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_written_meshes_equal_the_generated_ones(tmp_path, capsys):
    from facelab.data.synth_dataset import load_synthfaces
    from facelab.mesh import read_mesh

    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--identities", "2", "--format", "obj"]) == 0
    dataset = load_synthfaces(identities=2)
    index = next(i for i, r in enumerate(dataset.records) if r.expression != "neutral")
    record = dataset.records[index]
    mesh = read_mesh(out / record.subject / f"{record.expression}.obj")
    np.testing.assert_allclose(mesh.vertices, dataset.vertices[index], atol=1e-3)


def test_train_options_left_out_take_the_training_configs_defaults(tmp_path, capsys):
    # The command line, the app and Python share one recipe: TrainConfig's defaults.
    from facelab.cli import build_parser, train_config_from_args
    from facelab.training.config import TrainConfig

    parser = build_parser()
    defaults = TrainConfig()
    assert train_config_from_args(parser.parse_args(["train", "--out", str(tmp_path / "run")])) == defaults
    given = train_config_from_args(parser.parse_args(["train", "--out", str(tmp_path / "run"), "--identity-dims", "0",
                                                      "--epochs", "3", "--recognizer-warmup", "64"]))
    assert (given.identity_dims, given.epochs, given.experimental.recognizer_warmup_samples) == (0, 3, 64)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"(default {defaults.epochs})" in shown and f"default {defaults.expression_dims})" in shown
    assert all(variant in shown for variant in ("no-l2l", "gca", "identity-preserving"))
