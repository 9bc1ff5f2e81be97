"""Dataset layouts on tiny fake trees: detection, record order, pairing, skipping, generic export."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest

from facelab.data.dataset import NEUTRAL, FaceDataset
from facelab.data.layouts import LAYOUT_ORDER, detect_layout, layout_module, load_dataset
from facelab.data.layouts import facescape, generic
from facelab.data.layouts.generic import natural_key, write_generic
from facelab.errors import DatasetError
from facelab.mesh import FaceMesh, write_mesh


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


# ---- fake meshes ------------------------------------------------------------------------------
NX, NY = 6, 5  # a 30-vertex grid


def grid_triangles() -> np.ndarray:
    triangles = []
    for row in range(NY - 1):
        for col in range(NX - 1):
            a = row * NX + col
            triangles += [[a, a + 1, a + NX + 1], [a, a + NX + 1, a + NX]]
    return np.array(triangles)


def face(code: float, scale: float = 1.0) -> FaceMesh:
    """A grid about 150 x 100 mm whose vertex 0 has z = ``code`` mm, times ``scale``."""
    xs, ys = np.meshgrid(np.linspace(-75, 75, NX), np.linspace(-50, 50, NY))
    vertices = np.stack([xs.ravel(), ys.ravel(), 10 * np.cos(xs.ravel() / 40)], axis=1)
    vertices[0, 2] = code
    return FaceMesh(vertices * scale, grid_triangles(), name=f"face {code}")


def code_of(dataset: FaceDataset, index: int) -> float:
    return float(dataset.vertices[index][0, 2])


def write_shuffled(files: dict[Path, FaceMesh], seed: int) -> None:
    """Write the files in a seeded random order (the loaders must not depend on it)."""
    items = list(files.items())
    random.Random(seed).shuffle(items)
    for path, mesh in items:
        write_mesh(mesh, path)


def labels(dataset: FaceDataset) -> list[tuple[str, str, str]]:
    return [(r.subject, r.group, r.expression) for r in dataset.records]


# ---- fake trees -------------------------------------------------------------------------------
COMA_SEQUENCES = {  # subject -> sequence -> frame count
    "FaceTalk_170725_00137_TA": {"bareteeth": 30, "cheeks_in": 8},
    "FaceTalk_170728_03272_TA": {"bareteeth": 25, "mouth_up": 14},
}


def build_coma(root: Path, seed: int = 0) -> Path:
    """CoMA frames in metres; vertex 0 carries the frame number (mm) so the read frame is known."""
    files = {}
    for subject, sequences in COMA_SEQUENCES.items():
        for sequence, count in sequences.items():
            first = 3 if sequence == "mouth_up" else 1  # a sequence need not start at frame 1
            for frame in range(first, first + count):
                files[root / subject / sequence / f"{sequence}.{frame:06d}.ply"] = face(frame, scale=0.001)
    write_shuffled(files, seed)
    return root


def write_quad_obj(path: Path, vertices: np.ndarray) -> None:
    """An OBJ of the grid with quads (as FaceWarehouse stores them)."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    for row in range(NY - 1):
        for col in range(NX - 1):
            a = row * NX + col + 1
            lines.append(f"f {a} {a + 1} {a + NX + 1} {a + NX}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


FWH_TESTERS = (1, 2, 10)
FWH_SHAPES = 12  # shape_0 .. shape_11, enough to check that shape_2 sorts before shape_10


def build_facewarehouse(root: Path, seed: int = 0) -> Path:
    """Coordinates in decimetres (a 1.5 dm wide face): the unit guess must find x100."""
    jobs = [(tester, shape) for tester in FWH_TESTERS for shape in range(FWH_SHAPES)]
    random.Random(seed).shuffle(jobs)
    for tester, shape in jobs:
        write_quad_obj(root / f"Tester_{tester}" / "Blendshape" / f"shape_{shape}.obj",
                       face(100 * tester + shape, scale=0.01).vertices)
    (root / "Tester_1" / "Blendshape" / "shape.bs").write_bytes(b"\0" * 16)  # ignored
    return root


def build_facescape(root: Path, seed: int = 0) -> Path:
    """Subjects 1, 2, 10; subject 2 lacks 5_jaw_left and has a broken 7_jaw_forward; 10 lacks its neutral."""
    files = {}
    for subject in ("1", "2", "10"):
        for number, expression in enumerate(facescape.EXPRESSIONS, start=1):
            if (subject, number) in {("2", 5), ("10", 1)}:
                continue
            files[root / subject / "models_reg" / f"{number}_{expression}.obj"] = face(1000 * int(subject) + number)
    write_shuffled(files, seed)
    (root / "2" / "models_reg" / "7_jaw_forward.obj").write_text("v 1 2\nf 1 2 3 garbage\n")
    (root / "1" / "models_reg" / "1_neutral.obj.mtl").write_text("newmtl skin\n")  # ignored
    return root


def build_generic_folder(root: Path, seed: int = 0) -> Path:
    files = {}
    for s, subject in enumerate(("subject_2", "subject_10", "subject_1")):
        for e, expression in enumerate((NEUTRAL, "smile", "frown")):
            files[root / subject / f"{expression}.ply"] = face(10 * s + e)
    write_shuffled(files, seed)
    return root


def build_ict_npz(path: Path) -> Path:
    from facelab.data.morphable_model import MorphableModel

    grid = face(0)
    rng = np.random.default_rng(0)
    model = MorphableModel(grid.vertices, grid.triangles, rng.normal(size=(4, NX * NY, 3)),
                           rng.normal(size=(5, NX * NY, 3)), tuple(f"shape{i}" for i in range(5)), 12)
    return model.save(path)


BUILDERS = {
    "coma": lambda root: build_coma(root),
    "facewarehouse": lambda root: build_facewarehouse(root),
    "facescape": lambda root: build_facescape(root),
    "generic": lambda root: build_generic_folder(root),
    "ict-facekit": lambda root: build_ict_npz(root / "model.npz"),
}


# ---- detection --------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", list(BUILDERS))
def test_each_tree_is_claimed_by_its_layout_only(tmp_path, layout):
    target = BUILDERS[layout](tmp_path / "data")
    target = target if layout == "ict-facekit" else tmp_path / "data"
    assert detect_layout(target) == layout
    claimed = [name for name in LAYOUT_ORDER if layout_module(name).detect(target)]
    assert claimed == [layout]


def test_generic_manifest_folder_is_claimed_by_generic_only(tmp_path):
    write_mesh(face(0), tmp_path / "meshes" / "a.ply")
    (tmp_path / "manifest.csv").write_text("subject,expression,path\nA,neutral,meshes/a.ply\n")
    assert [name for name in LAYOUT_ORDER if layout_module(name).detect(tmp_path)] == ["generic"]


def test_unknown_folder_names_the_expected_layouts(tmp_path):
    (tmp_path / "notes.txt").write_text("not a dataset")
    write_mesh(face(0), tmp_path / "someone" / "happy.ply")  # no neutral: not the generic layout
    with pytest.raises(DatasetError) as caught:
        detect_layout(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    for name in LAYOUT_ORDER:
        assert f"{name}:" in message


def test_forced_wrong_format_is_refused(tmp_path):
    build_generic_folder(tmp_path)
    with pytest.raises(DatasetError, match="not in the coma layout"):
        load_dataset(tmp_path, format="coma")


def test_natural_key_orders_numbers_by_value():
    names = ["Tester_10", "Tester_2", "shape_10", "Tester_1", "shape_2", "a01", "a1"]
    assert sorted(names, key=natural_key) == ["a01", "a1", "shape_2", "shape_10", "Tester_1", "Tester_2", "Tester_10"]


# ---- CoMA -------------------------------------------------------------------------------------
def test_coma_pairs_first_frame_with_evenly_spaced_frames(tmp_path):
    dataset = load_dataset(build_coma(tmp_path), progress=False)
    assert dataset.layout == "coma"
    assert dataset.subjects == sorted(COMA_SEQUENCES)
    for subject, sequences in COMA_SEQUENCES.items():
        for sequence, count in sequences.items():
            first = 3 if sequence == "mouth_up" else 1
            rows = [i for i, r in enumerate(dataset.records) if r.subject == subject and r.group == sequence]
            frames = [round(code_of(dataset, i)) for i in rows]
            assert dataset.records[rows[0]].expression == NEUTRAL and frames[0] == first
            assert all(dataset.records[i].expression == sequence for i in rows[1:])
            rest = list(range(first + 1, first + count))
            expected = rest if len(rest) <= 12 else [rest[round(x)] for x in np.linspace(0, len(rest) - 1, 12)]
            assert frames[1:] == expected
            assert len(frames) == 1 + min(12, count - 1)
            assert frames[-1] == first + count - 1  # the last frame is among those taken
    # every expressive frame is paired with its own sequence's first frame
    for pair in dataset.pairs:
        expressive, neutral = dataset.records[pair.expressive], dataset.records[pair.neutral]
        assert (neutral.subject, neutral.group, neutral.is_neutral) == (expressive.subject, expressive.group, True)
    assert len(dataset.pairs) == 12 + 7 + 12 + 12


def test_coma_converts_metres_to_millimetres_and_reads_only_chosen_frames(tmp_path):
    dataset = load_dataset(build_coma(tmp_path), progress=False)
    assert np.ptp(dataset.vertices[0][:, 0]) == pytest.approx(150.0, rel=1e-5)
    assert len(dataset) == sum(1 + min(12, n - 1) for seqs in COMA_SEQUENCES.values() for n in seqs.values())


def test_coma_frames_per_sequence_option(tmp_path):
    dataset = load_dataset(build_coma(tmp_path), progress=False, frames_per_sequence=3)
    rows = [round(code_of(dataset, i)) for i, r in enumerate(dataset.records)
            if r.subject == "FaceTalk_170725_00137_TA" and r.group == "bareteeth"]
    assert rows == [1, 2, 16, 30]
    with pytest.raises(DatasetError, match="frames_per_sequence"):
        load_dataset(tmp_path, progress=False, frames_per_sequence=0)


def test_record_order_and_split_do_not_depend_on_creation_order(tmp_path):
    one = load_dataset(build_coma(tmp_path / "one", seed=1), progress=False)
    two = load_dataset(build_coma(tmp_path / "two", seed=2), progress=False)
    assert labels(one) == labels(two)
    assert [r.path.relative_to(tmp_path / "one") for r in one.records] == \
           [r.path.relative_to(tmp_path / "two") for r in two.records]
    assert one.split(seed=3) == two.split(seed=3)
    np.testing.assert_array_equal(np.asarray(one.vertices), np.asarray(two.vertices))


# ---- FaceWarehouse ----------------------------------------------------------------------------
def test_facewarehouse_sorts_numerically_and_splits_quads(tmp_path):
    dataset = load_dataset(build_facewarehouse(tmp_path), progress=False)
    assert dataset.layout == "facewarehouse"
    subjects = list(dict.fromkeys(r.subject for r in dataset.records))
    assert subjects == ["Tester_1", "Tester_2", "Tester_10"]
    first = [r.expression for r in dataset.records if r.subject == "Tester_1"]
    assert first == [NEUTRAL] + [f"shape_{j}" for j in range(1, FWH_SHAPES)]
    assert [round(code_of(dataset, i)) - 100 for i in range(FWH_SHAPES)] == list(range(FWH_SHAPES))  # dm -> mm
    assert len(dataset.triangles) == 2 * (NX - 1) * (NY - 1)
    assert len(dataset.pairs) == len(FWH_TESTERS) * (FWH_SHAPES - 1)


def test_facewarehouse_unit_guess_and_override(tmp_path):
    build_facewarehouse(tmp_path)
    guessed = load_dataset(tmp_path, progress=False)
    assert np.ptp(guessed.vertices[0][:, 0]) == pytest.approx(150.0, rel=1e-5)
    raw = load_dataset(tmp_path, progress=False, unit_scale=1.0)
    assert np.ptp(raw.vertices[0][:, 0]) == pytest.approx(1.5, rel=1e-5)
    with pytest.raises(DatasetError, match="unit_scale"):
        load_dataset(tmp_path, progress=False, unit_scale=-1)


# ---- FaceScape --------------------------------------------------------------------------------
def test_facescape_skips_missing_and_broken_files_with_warnings(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(build_facescape(tmp_path), progress=False)
    assert dataset.layout == "facescape"
    assert list(dict.fromkeys(r.subject for r in dataset.records)) == ["1", "2", "10"]
    by_subject = {s: [r.expression for r in dataset.records if r.subject == s] for s in ("1", "2", "10")}
    assert by_subject["1"] == [NEUTRAL, *facescape.EXPRESSIONS[1:]]
    assert "jaw_left" not in by_subject["2"] and "jaw_forward" not in by_subject["2"]
    assert len(by_subject["2"]) == 18 and NEUTRAL not in by_subject["10"]
    warnings = " | ".join(dataset.warnings)
    assert "5_jaw_left" in warnings  # missing
    assert "7_jaw_forward.obj" in warnings  # broken, skipped by the vertex cache
    assert "subject 10" in warnings and "no neutral" in warnings
    assert {p.subject for p in dataset.pairs} == {"1", "2"}
    assert len(dataset.pairs) == 19 + 17
    assert any("no neutral" in record.getMessage() for record in caplog.records)
    smile = next(i for i, r in enumerate(dataset.records) if r.subject == "2" and r.expression == "smile")
    assert code_of(dataset, smile) == pytest.approx(2002.0)  # mm, unscaled


# ---- generic ----------------------------------------------------------------------------------
def test_generic_folder_layout(tmp_path):
    dataset = load_dataset(build_generic_folder(tmp_path), progress=False)
    assert dataset.layout == "generic"
    assert list(dict.fromkeys(r.subject for r in dataset.records)) == ["subject_1", "subject_2", "subject_10"]
    assert [r.expression for r in dataset.records[:3]] == [NEUTRAL, "frown", "smile"]
    assert len(dataset.pairs) == 6


def test_generic_manifest_with_relative_and_absolute_paths(tmp_path):
    write_mesh(face(1), tmp_path / "m" / "n.ply")
    write_mesh(face(2), tmp_path / "m" / "s.obj")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.ply"
    write_mesh(face(3), outside)
    (tmp_path / "manifest.csv").write_text(
        "Subject, Expression, Path, Group\n"
        f"b,happy,{outside},\n"
        "b,neutral,m/n.ply,\n"
        "a,NEUTRAL,m/s.obj,\n"
    )
    dataset = load_dataset(tmp_path, progress=False)
    assert labels(dataset) == [("a", "", NEUTRAL), ("b", "", NEUTRAL), ("b", "", "happy")]
    assert [code_of(dataset, i) for i in range(3)] == pytest.approx([2, 1, 3])


@pytest.mark.parametrize("text, complaint", [
    ("", "is empty"),
    ("subject,path\nA,a.ply\n", "lacks the column(s) expression"),
    ("subject,expression,path\n", "no rows"),
    ("subject,expression,path\nA,neutral,missing.ply\n", "do not exist"),
    ("subject,expression,path\n,neutral,a.ply\n", "has no subject"),
])
def test_generic_manifest_errors_are_one_sentence(tmp_path, text, complaint):
    write_mesh(face(0), tmp_path / "a.ply")
    (tmp_path / "manifest.csv").write_text(text)
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path, progress=False)
    message = str(caught.value)
    assert complaint in message and "\n" not in message and message.endswith(".")


# ---- write_generic ----------------------------------------------------------------------------
def _keyed(dataset: FaceDataset) -> dict[tuple, int]:
    """(subject, group, expression, occurrence) -> index: labels repeat in CoMA."""
    seen: dict[tuple, int] = {}
    keys = {}
    for index, r in enumerate(dataset.records):
        label = (r.subject, r.group, r.expression)
        seen[label] = seen.get(label, 0) + 1
        keys[(*label, seen[label])] = index
    return keys


@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_write_generic_round_trip(tmp_path, fmt):
    source = load_dataset(build_coma(tmp_path / "coma"), progress=False)
    out = write_generic(source, tmp_path / "export", fmt=fmt, progress=False)
    assert detect_layout(out) == "generic"
    again = load_dataset(out, progress=False)
    assert again.layout == "generic" and source.name in again.name
    before, after = _keyed(source), _keyed(again)
    assert before.keys() == after.keys()
    for key, index in before.items():
        np.testing.assert_allclose(np.asarray(again.vertices[after[key]]), np.asarray(source.vertices[index]), atol=1e-4)
    np.testing.assert_array_equal(np.sort(again.triangles, axis=None), np.sort(source.triangles, axis=None))
    inverse_before = {index: key for key, index in before.items()}
    inverse_after = {index: key for key, index in after.items()}
    assert {(inverse_before[p.expressive], inverse_before[p.neutral]) for p in source.pairs} == \
           {(inverse_after[p.expressive], inverse_after[p.neutral]) for p in again.pairs}
    metadata = (out / "facelab.json").read_text()
    assert '"units": "mm"' in metadata and '"complete": true' in metadata
    assert not [p for p in out.rglob(".*")]  # no temporary file left behind


def test_write_generic_refuses_a_foreign_non_empty_folder(tmp_path):
    source = load_dataset(build_generic_folder(tmp_path / "src"), progress=False)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not empty"):
        write_generic(source, foreign, progress=False)
    assert [p.name for p in foreign.iterdir()] == ["thesis.txt"]
    assert (foreign / "thesis.txt").read_text() == "precious"
    with pytest.raises(DatasetError, match="is a file"):
        write_generic(source, foreign / "thesis.txt", progress=False)
    with pytest.raises(DatasetError, match="expected one of ply, obj"):
        write_generic(source, tmp_path / "new", fmt="stl", progress=False)
    assert not (tmp_path / "new").exists()


def test_write_generic_rewrites_its_own_output_and_drops_stale_meshes(tmp_path):
    source = load_dataset(build_generic_folder(tmp_path / "src"), progress=False)
    out = write_generic(source, tmp_path / "export", progress=False)
    keep = [i for i, r in enumerate(source.records) if r.subject != "subject_10"]
    subset = FaceDataset("subset", "generic", np.asarray(source.vertices)[keep], source.triangles,
                         [source.records[i] for i in keep])
    write_generic(subset, out, progress=False)
    assert not (out / "subject_10").exists()
    again = load_dataset(out, progress=False)
    assert again.subjects == ["subject_1", "subject_2"] and len(again) == len(keep)


def test_an_interrupted_export_is_refused_until_rerun(tmp_path, monkeypatch):
    source = load_dataset(build_generic_folder(tmp_path / "src"), progress=False)
    out = tmp_path / "export"
    calls = []

    def failing_write(mesh, path):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return write_mesh(mesh, path)

    monkeypatch.setattr(generic, "write_mesh", failing_write)
    with pytest.raises(KeyboardInterrupt):
        write_generic(source, out, progress=False)
    with pytest.raises(DatasetError, match="interrupted"):
        load_dataset(out, progress=False)
    monkeypatch.setattr(generic, "write_mesh", write_mesh)
    write_generic(source, out, progress=False)  # its own, unfinished output: allowed
    assert len(load_dataset(out, progress=False)) == len(source)
