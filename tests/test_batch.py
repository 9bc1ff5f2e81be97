"""neutralize on folders and datasets, export and identify, end to end with a tiny trained model."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import numpy as np
import pytest

from facelab.batch import KEPT, REPORT_NAME, SKIPPED, WRITTEN, meshes_of_dataset, neutralise_meshes
from facelab.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, main
from facelab.data.layouts import load_dataset
from facelab.data.layouts.generic import write_generic
from facelab.mesh import read_mesh, read_ply_vertex_property
from facelab.model import FaceLabModel
from tests.conftest import make_tiny_dataset

SUBJECTS, EXPRESSIONS = 8, 4
MESHES = SUBJECTS * (1 + EXPRESSIONS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    data = root / "data"
    write_generic(make_tiny_dataset(subjects=SUBJECTS, expressions=EXPRESSIONS), data, "ply", progress=False)
    # the recogniser's warm-up makes the 3-epoch model tell its training subjects apart
    assert main(["train", "--data", str(data), "--out", str(root / "run"), "--epochs", "3", "--batch-size", "4",
                 "--threads", "1", "--recognizer-warmup", "6400"]) == 0
    return root


@pytest.fixture(scope="module")
def model(trained):
    return FaceLabModel.load(trained / "run" / "best")


def _checkpoint(trained) -> list[str]:
    return ["--checkpoint", str(trained / "run" / "best")]


def _report(out) -> list[dict]:
    with open(out / REPORT_NAME, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _plain_folder(trained, target):
    """A folder in no dataset layout: meshes at its top and two folders down, no neutral.* beside them."""
    copies = {"p01/expr_0.ply": "p01_expr_0.ply", "p02/neutral.ply": "day1/p02_neutral.ply",
              "p03/expr_2.ply": "day1/p03/expr_2.ply"}
    for name, copy in copies.items():
        (target / "scans" / copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(trained / "data" / name, target / "scans" / copy)
    return target / "scans"


def test_a_dataset_folder_is_neutralised_into_the_same_layout_with_a_report(trained, model, tmp_path):
    out = tmp_path / "out"
    assert main(["neutralize", str(trained / "data"), "--out", str(out), *_checkpoint(trained)]) == 0
    inputs = sorted(path.relative_to(trained / "data") for path in (trained / "data").rglob("*.ply"))
    assert len(inputs) == MESHES
    assert sorted(path.relative_to(out) for path in out.rglob("*.ply")) == inputs

    # the same prediction as the model gives that mesh alone
    source, truth = trained / "data" / "p07" / "expr_3.ply", trained / "data" / "p07" / "neutral.ply"
    predicted = read_mesh(out / "p07" / "expr_3.ply").vertices
    np.testing.assert_allclose(predicted, model.neutralise(read_mesh(source).vertices), atol=1e-3)
    error = np.linalg.norm(predicted - read_mesh(truth).vertices, axis=1)
    np.testing.assert_allclose(read_ply_vertex_property(out / "p07" / "expr_3.ply", "error"), error, atol=1e-3)

    rows = {row["output"]: row for row in _report(out)}
    assert len(rows) == MESHES and {row["status"] for row in rows.values()} == {WRITTEN}
    row = rows["p07/expr_3.ply"]
    assert row["input"] == str(source) and row["subject"] == "p07" and row["expression"] == "expr_3"
    assert float(row["error_mm"]) == pytest.approx(error.mean(), abs=1e-3)
    top_subject, top_probability = model.top_subjects(read_mesh(source).vertices, 1)[0]
    assert row["top1_subject"] == top_subject
    assert float(row["top1_probability"]) == pytest.approx(top_probability, abs=1e-3)
    assert "read_expression" not in row, "a model without the expression mixture reads no expression"
    # a neutral face is in no pair: no error to report
    assert rows["p07/neutral.ply"]["error_mm"] == "" and rows["p07/neutral.ply"]["top1_subject"]


def test_a_plain_folder_keeps_its_tree_in_another_format_without_an_error_column(trained, tmp_path):
    scans = _plain_folder(trained, tmp_path)
    out = tmp_path / "out"
    assert main(["neutralize", str(scans), "--out", str(out), "--format", "obj", *_checkpoint(trained)]) == 0
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*.*") if path.name != REPORT_NAME)
    assert written == ["day1/p02_neutral.obj", "day1/p03/expr_2.obj", "p01_expr_0.obj"]
    rows = _report(out)
    assert "error_mm" not in rows[0] and [row["status"] for row in rows] == [WRITTEN] * 3
    assert [row["subject"] for row in rows] == ["", "", ""]  # no layout, no labels
    assert read_mesh(out / "day1" / "p03" / "expr_2.obj").n_vertices == 162


def test_generated_data_is_written_as_subject_and_expression(model, tmp_path):
    dataset = make_tiny_dataset(subjects=2, expressions=2, seed=5, prefix="g")
    report = neutralise_meshes(model, meshes_of_dataset(dataset), tmp_path / "out", progress=False)
    assert sorted(path.relative_to(tmp_path / "out").as_posix() for path in (tmp_path / "out").rglob("*.ply")) == [
        "g00/expr_0.ply", "g00/expr_1.ply", "g00/neutral.ply", "g01/expr_0.ply", "g01/expr_1.ply", "g01/neutral.ply"]
    rows = {row["output"]: row for row in report.rows}
    truth, predicted = dataset.vertices[0], read_mesh(tmp_path / "out" / "g00" / "expr_1.ply").vertices
    assert float(rows["g00/expr_1.ply"]["error_mm"]) == pytest.approx(
        np.linalg.norm(predicted - truth, axis=1).mean(), abs=1e-3)


def test_a_rerun_keeps_finished_outputs_and_redoes_missing_ones(trained, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="facelab.mesh.io")  # a failure's log shows a parser's own exception
    out = tmp_path / "out"
    command = ["neutralize", str(trained / "data"), "--out", str(out), *_checkpoint(trained)]
    assert main(command) == 0
    first = {row["output"]: row for row in _report(out)}
    finished = out / "p02" / "expr_1.ply"
    stamp = finished.stat().st_mtime_ns
    (out / "p05" / "expr_0.ply").unlink()

    assert main(command) == 0
    rows = {row["output"]: row for row in _report(out)}
    assert finished.stat().st_mtime_ns == stamp
    assert rows["p05/expr_0.ply"]["status"] == WRITTEN and (out / "p05" / "expr_0.ply").is_file()
    assert rows["p02/expr_1.ply"]["status"] == KEPT
    # the kept rows carry the earlier run's results
    for column in ("top1_subject", "top1_probability", "error_mm"):
        assert rows["p02/expr_1.ply"][column] == first["p02/expr_1.ply"][column]

    assert main([*command, "--overwrite"]) == 0
    assert finished.stat().st_mtime_ns != stamp
    assert {row["status"] for row in _report(out)} == {WRITTEN}


def test_a_bad_file_is_skipped_named_and_reported_while_the_rest_is_done(trained, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(trained / "data", data)
    broken = data / "p03" / "expr_1.ply"
    broken.write_bytes(broken.read_bytes()[:200])
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert main(["neutralize", str(data), "--out", str(out), *_checkpoint(trained)]) == 0
    assert str(broken) in caplog.text
    rows = {row["output"]: row for row in _report(out)}
    assert rows["p03/expr_1.ply"]["status"] == SKIPPED and str(broken) in rows["p03/expr_1.ply"]["reason"]
    assert not (out / "p03" / "expr_1.ply").exists()
    assert sum(row["status"] == WRITTEN for row in rows.values()) == MESHES - 1


def test_nothing_neutralisable_exits_2_with_one_sentence(trained, tmp_path, capsys):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "empty.ply").write_bytes(b"")
    (scans / "other.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    out = tmp_path / "out"
    assert main(["neutralize", str(scans), "--out", str(out), *_checkpoint(trained)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("facelab: error: none of the 2 meshes") and "Traceback" not in err
    assert {row["status"] for row in _report(out)} == {SKIPPED}
    assert [path.name for path in out.iterdir()] == [REPORT_NAME]


def test_ctrl_c_leaves_complete_files_and_a_rerun_finishes_the_rest(trained, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="facelab.mesh.io")  # a failure's log shows a parser's own exception
    calls = []
    original = FaceLabModel.analyse

    def stopped_on_the_second_chunk(self, vertices):
        calls.append(len(vertices))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, vertices)

    monkeypatch.setattr(FaceLabModel, "analyse", stopped_on_the_second_chunk)
    out = tmp_path / "out"
    command = ["neutralize", str(trained / "data"), "--out", str(out), "--batch-size", "8", *_checkpoint(trained)]
    assert main(command) == EXIT_INTERRUPTED
    written = sorted(out.rglob("*.ply"))
    assert len(written) == 8 and not list(out.rglob(".*"))  # the first chunk, and no partial file
    for path in written:
        assert read_mesh(path).n_vertices == 162
    rows = _report(out)
    assert [row["status"] for row in rows] == [WRITTEN] * 8, rows  # a failure shows each row's reason

    monkeypatch.setattr(FaceLabModel, "analyse", original)
    assert main(command) == 0
    rows = _report(out)
    statuses = [row["status"] for row in rows]
    assert statuses.count(KEPT) == 8 and statuses.count(WRITTEN) == MESHES - 8, rows


def test_export_round_trip_gives_the_same_meshes_and_labels(trained, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(trained / "data"), "--out", str(out), "--format", "obj"]) == 0
    assert "wrote 40 meshes of 8 subjects" in capsys.readouterr().out
    original, exported = load_dataset(trained / "data", progress=False), load_dataset(out, progress=False)
    assert [(r.subject, r.expression, r.group) for r in exported.records] == [
        (r.subject, r.expression, r.group) for r in original.records]
    np.testing.assert_allclose(np.asarray(exported.vertices), np.asarray(original.vertices), atol=1e-4)
    np.testing.assert_array_equal(exported.triangles, original.triangles)


def test_identify_ranks_the_true_subject_first(trained, model, tmp_path, capsys):
    subject = model.subjects[-1]  # a training subject, seen with other expressions
    probe = trained / "data" / subject / "expr_2.ply"
    assert main(["identify", str(probe), "--gallery", str(trained / "data"), "--k", "3", "--json",
                 *_checkpoint(trained)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["gallery_subjects"] == SUBJECTS and not result["skipped"]
    (only,) = result["probes"]
    assert only["probe"] == str(probe)
    assert [match["rank"] for match in only["matches"]] == [1, 2, 3]
    assert only["matches"][0]["subject"] == subject
    scores = [match["similarity"] for match in only["matches"]]
    assert scores == sorted(scores, reverse=True)

    scans = _plain_folder(trained, tmp_path)
    assert main(["identify", str(scans), "--gallery", str(trained / "data"), *_checkpoint(trained)]) == 0
    text = capsys.readouterr().out
    assert text.count("  1  ") == 3 and str(scans / "day1" / "p03" / "expr_2.ply") in text


def test_identify_with_an_unreadable_probe_exits_2(trained, tmp_path, capsys):
    probe = tmp_path / "probe.ply"
    probe.write_bytes(b"")
    assert main(["identify", str(probe), "--gallery", str(trained / "data"), *_checkpoint(trained)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "is empty" in err and "Traceback" not in err


def test_format_for_a_single_mesh_is_refused(trained, tmp_path, capsys):
    source = trained / "data" / "p01" / "expr_0.ply"
    out = tmp_path / "one.ply"
    code = main(["neutralize", str(source), "--out", str(out), "--format", "obj", *_checkpoint(trained)])
    assert code == EXIT_USER_ERROR
    assert "--format is for a folder or dataset" in capsys.readouterr().err and not out.exists()


# ---- facelab render DATA --out DIR ----------------------------------------------------------------


def _figures(out) -> list[str]:
    return sorted(path.relative_to(out).as_posix() for path in out.rglob("*.png"))


def _two_subjects(trained, target):
    """A dataset folder of two subjects (a neutral and four expressions each), generic layout."""
    for subject in ("p01", "p02"):
        shutil.copytree(trained / "data" / subject, target / "data" / subject)
    return target / "data"


def test_render_draws_every_mesh_of_a_dataset_as_the_single_file_render_does(trained, tmp_path, capsys):
    from PIL import Image

    from facelab.render import PANEL_SIZE

    data, out = _two_subjects(trained, tmp_path), tmp_path / "figures"
    assert main(["render", str(data), "--out", str(out), *_checkpoint(trained)]) == 0
    assert "wrote 10 figures" in capsys.readouterr().out
    meshes = sorted(path.relative_to(data).with_suffix(".png").as_posix() for path in data.rglob("*.ply"))
    assert _figures(out) == meshes
    # an expression is paired with its subject's neutral: three panels; a neutral face has no truth: two
    assert Image.open(out / "p01" / "expr_2.png").size == (3 * PANEL_SIZE[0], PANEL_SIZE[1])
    assert Image.open(out / "p01" / "neutral.png").size == (2 * PANEL_SIZE[0], PANEL_SIZE[1])

    single = tmp_path / "single.png"
    assert main(["render", str(data / "p01" / "expr_2.ply"), "--ground-truth", str(data / "p01" / "neutral.ply"),
                 "--out", str(single), *_checkpoint(trained)]) == 0
    batch, alone = (np.asarray(Image.open(path).convert("RGB"), dtype=float)
                    for path in (out / "p01" / "expr_2.png", single))
    assert np.abs(batch - alone).mean() < 0.5
    other = np.asarray(Image.open(out / "p02" / "expr_2.png").convert("RGB"), dtype=float)
    assert np.abs(other - alone).mean() > 2  # another face, another figure


def test_render_rerun_keeps_finished_figures_and_overwrite_redraws_them(trained, tmp_path, capsys):
    scans, out = _plain_folder(trained, tmp_path), tmp_path / "figures"
    command = ["render", str(scans), "--out", str(out), *_checkpoint(trained)]
    assert main(command) == 0
    assert _figures(out) == ["day1/p02_neutral.png", "day1/p03/expr_2.png", "p01_expr_0.png"]
    kept = out / "p01_expr_0.png"
    stamp = kept.stat().st_mtime_ns
    (out / "day1" / "p03" / "expr_2.png").unlink()
    capsys.readouterr()

    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "wrote 1 figures" in printed and "kept 2 from an earlier run" in printed
    assert kept.stat().st_mtime_ns == stamp and (out / "day1" / "p03" / "expr_2.png").is_file()

    assert main([*command, "--overwrite"]) == 0
    assert kept.stat().st_mtime_ns != stamp
    assert "wrote 3 figures" in capsys.readouterr().out


def test_render_skips_a_bad_file_with_a_warning_naming_it(trained, tmp_path, caplog, capsys):
    scans, out = _plain_folder(trained, tmp_path), tmp_path / "figures"
    broken = scans / "day1" / "broken.ply"
    broken.write_bytes((scans / "p01_expr_0.ply").read_bytes()[:200])
    with caplog.at_level(logging.WARNING):
        assert main(["render", str(scans), "--out", str(out), *_checkpoint(trained)]) == 0
    assert str(broken) in caplog.text
    assert _figures(out) == ["day1/p02_neutral.png", "day1/p03/expr_2.png", "p01_expr_0.png"]
    printed = capsys.readouterr().out
    assert "wrote 3 figures" in printed and "skipped 1 mesh(es)" in printed and str(broken) in printed


@pytest.mark.parametrize("case", ["out-is-a-file", "out-is-a-png", "ground-truth", "nothing-drawable"])
def test_render_of_a_folder_refuses_what_it_cannot_do_with_exit_2(trained, tmp_path, capsys, case):
    scans, out = _plain_folder(trained, tmp_path), tmp_path / "figures"
    extra = []
    if case == "out-is-a-file":
        out.write_text("x")
    elif case == "out-is-a-png":
        out = tmp_path / "figure.png"
    elif case == "ground-truth":
        extra = ["--ground-truth", str(scans / "p01_expr_0.ply")]
    else:
        scans = tmp_path / "empty-scans"
        scans.mkdir()
        (scans / "empty.ply").write_bytes(b"")
    assert main(["render", str(scans), "--out", str(out), *extra, *_checkpoint(trained)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("facelab: error: ") and "Traceback" not in err
    assert not list(tmp_path.rglob("*.png"))
