"""The morphable model, the ICT-FaceKit importer (on a tiny fake FaceXModel) and the ICT layout."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from facelab.data.dataset import NEUTRAL
from facelab.data.layouts import detect_layout, ict_facekit, load_dataset
from facelab.data.morphable_model import ICT_EXPRESSION_NAMES, MorphableModel, import_ict
from facelab.errors import DatasetError

SHARED_MODEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ict-facekit" / "ict_face_model.npz"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def shared_model() -> Path:
    if not SHARED_MODEL.is_file():
        pytest.skip(f"the ICT-FaceKit model is not at {SHARED_MODEL} (shared data absent)")
    return SHARED_MODEL


# ---- a tiny fake FaceXModel -------------------------------------------------------------------
# A "head" of 20 vertices in cm: a 4 x 3 grid of quads (the face area, vertices 0..11; the narrow
# area is its first 8) and a 4 x 2 strip (vertices 12..19, like the head and neck), joined by
# quads that straddle both and must be dropped.
FAKE_FACE, FAKE_NARROW, FAKE_HEAD = 12, 8, 20


def fake_head_cm() -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(4.0), np.arange(5.0))
    return np.stack([xs.ravel(), ys.ravel(), 0.1 * xs.ravel() ** 2], axis=1)  # rows 0-2: face, 3-4: head


def fake_quads() -> list[tuple[int, int, int, int]]:
    return [(r * 4 + c, r * 4 + c + 1, (r + 1) * 4 + c + 1, (r + 1) * 4 + c) for r in range(4) for c in range(3)]


def write_fake_obj(path: Path, vertices: np.ndarray) -> None:
    """Like ICT-FaceKit's files: texture coordinates, v/vt faces, and two materials."""
    lines = ["mtllib ICTFaceModelMaterial.mtl"] + [f"v {x:.9f} {y:.9f} {z:.9f}" for x, y, z in vertices]
    lines += [f"vt {i / 20:.3f} 0.5" for i in range(len(vertices))]
    quads = fake_quads()
    for material, part in (("face", quads[:6]), ("head", quads[6:])):
        lines.append(f"usemtl {material}")
        lines += ["f " + " ".join(f"{v + 1}/{v + 1}" for v in quad) for quad in part]
    path.write_text("\n".join(lines) + "\n")


def build_fake_facexmodel(folder: Path, identities: int = 3) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    head = fake_head_cm()
    write_fake_obj(folder / "generic_neutral_mesh.obj", head)
    for i in range(identities):
        write_fake_obj(folder / f"identity{i:03d}.obj", head + rng.normal(scale=0.2, size=head.shape))
    for name in ICT_EXPRESSION_NAMES:
        write_fake_obj(folder / f"{name}.obj", head + rng.normal(scale=0.1, size=head.shape))
    (folder / "ICTFaceModelMaterial.mtl").write_text("newmtl face\nnewmtl head\n")
    return folder


fake_import = functools.partial(import_ict, face_vertices=FAKE_FACE, narrow_face_vertices=FAKE_NARROW, progress=False)


def test_import_keeps_the_face_area_in_mm_with_deltas(tmp_path):
    folder = build_fake_facexmodel(tmp_path / "FaceXModel")
    model = MorphableModel.load(fake_import(folder, tmp_path / "model.npz"))
    head = fake_head_cm()
    np.testing.assert_allclose(model.neutral, head[:FAKE_FACE] * 10, atol=1e-4)
    assert model.n_identity_modes == 3 and model.expression_names == ICT_EXPRESSION_NAMES
    assert model.narrow_face_vertices == FAKE_NARROW
    # 6 quads lie within the face area (rows 0-2), each split in two; straddling quads are dropped
    assert len(model.faces) == 12 and model.faces.max() == FAKE_FACE - 1
    expected = {tuple(sorted(t)) for a, b, c, d in fake_quads()[:6] for t in ((a, b, c), (a, c, d))}
    assert {tuple(sorted(t)) for t in model.faces.tolist()} == expected
    from facelab.data.morphable_model import _read_obj_vertices

    jaw = _read_obj_vertices(folder / "jawOpen.obj")
    np.testing.assert_allclose(model.expression_modes[ICT_EXPRESSION_NAMES.index("jawOpen")],
                               (jaw[:FAKE_FACE] - head[:FAKE_FACE]) * 10, atol=1e-4)


def test_import_reports_a_missing_file_in_one_sentence(tmp_path):
    folder = build_fake_facexmodel(tmp_path / "FaceXModel")
    (folder / "mouthPucker.obj").unlink()
    with pytest.raises(DatasetError, match="mouthPucker.obj") as caught:
        fake_import(folder, tmp_path / "model.npz")
    assert "\n" not in str(caught.value)
    (folder / "generic_neutral_mesh.obj").unlink()
    with pytest.raises(DatasetError, match="generic_neutral_mesh.obj"):
        fake_import(folder, tmp_path / "model.npz")
    assert not (tmp_path / "model.npz").exists()


def test_import_refuses_a_morph_target_of_another_size(tmp_path):
    folder = build_fake_facexmodel(tmp_path / "FaceXModel")
    write_fake_obj(folder / "identity001.obj", fake_head_cm()[:-4])
    with pytest.raises(DatasetError, match="identity001.obj has 16 vertices"):
        fake_import(folder, tmp_path / "model.npz")


# ---- the model file ---------------------------------------------------------------------------
def small_model(n_identity: int = 4, n_expression: int = 5) -> MorphableModel:
    rng = np.random.default_rng(0)
    neutral = rng.normal(size=(10, 3)) * 50
    faces = np.array([[0, 1, 2], [2, 3, 4], [5, 6, 7], [7, 8, 9]])
    return MorphableModel(neutral, faces, rng.normal(size=(n_identity, 10, 3)), rng.normal(size=(n_expression, 10, 3)),
                          tuple(f"shape{i}" for i in range(n_expression)), 5)


def test_model_save_load_round_trip(tmp_path):
    model = small_model()
    loaded = MorphableModel.load(model.save(tmp_path / "m.npz"))
    for key in ("neutral", "faces", "identity_modes", "expression_modes"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(model, key))
    assert loaded.expression_names == model.expression_names and loaded.narrow_face_vertices == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temporary file left


def test_model_load_rejects_bad_files_in_one_sentence(tmp_path):
    good = small_model().save(tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"not a zip at all" * 10)
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    np.savez(tmp_path / "pickled.npz", neutral=np.zeros((3, 3)), faces=np.zeros((1, 3), int),
             identity_modes=np.zeros((1, 3, 3)), expression_modes=np.zeros((1, 3, 3)),
             expression_names=np.array([{"not": "a string"}], dtype=object))
    np.savez(tmp_path / "inconsistent.npz", neutral=np.zeros((3, 3)), faces=np.array([[0, 1, 5]]),
             identity_modes=np.zeros((1, 3, 3)), expression_modes=np.zeros((1, 3, 3)), expression_names=np.array(["a"]))
    for name in ("truncated", "garbage", "foreign", "pickled", "inconsistent", "absent"):
        with pytest.raises(DatasetError) as caught:
            MorphableModel.load(tmp_path / f"{name}.npz")
        message = str(caught.value)
        assert "\n" not in message and message.endswith("."), message
    assert not ict_facekit.detect(tmp_path / "foreign.npz")
    assert not ict_facekit.detect(tmp_path / "garbage.npz")


def test_identity_sampling_is_seeded_standard_normal():
    model = small_model(n_identity=50)
    weights = model.sample_identities(2000, seed=3)
    assert weights.shape == (2000, 50)
    assert abs(weights.mean()) < 0.02 and abs(weights.std() - 1) < 0.02
    np.testing.assert_array_equal(model.sample_identities(5, seed=3), weights[:5])
    assert not np.array_equal(model.sample_identities(5, seed=4), weights[:5])


def test_shape_is_linear_in_both_weights():
    model = small_model()
    w, x = np.array([0.5, -1, 0, 2]), np.array([0, 1, 0.35, 0, 0])
    np.testing.assert_allclose(model.shape(w, x) - model.shape(w),
                               np.tensordot(x, model.expression_modes, axes=1), atol=1e-4)
    batch = model.shape(np.stack([w, 2 * w]), np.stack([x, x]))
    assert batch.shape == (2, 10, 3)
    np.testing.assert_allclose(batch[0], model.shape(w, x), atol=1e-5)


# ---- the layout -------------------------------------------------------------------------------
def test_layout_samples_labelled_pairs(tmp_path):
    model = small_model()
    path = model.save(tmp_path / "model.npz")
    assert detect_layout(path) == "ict-facekit"
    dataset = load_dataset(path, progress=False, identities=4, seed=1)
    per_identity = 1 + 5 + ict_facekit.COMBINATIONS
    assert len(dataset) == 4 * per_identity and dataset.subjects == ["ict_000", "ict_001", "ict_002", "ict_003"]
    assert len(dataset.pairs) == 4 * (per_identity - 1)
    levels = ict_facekit.LEVELS
    for i, subject in enumerate(dataset.subjects):
        rows = list(range(i * per_identity, (i + 1) * per_identity))
        neutral = np.asarray(dataset.vertices[rows[0]])
        assert dataset.records[rows[0]].expression == NEUTRAL
        for j, row in enumerate(rows[1:6]):
            shape, level = dataset.records[row].expression.rsplit("_", 1)
            assert shape == f"shape{j}" and level in levels
            np.testing.assert_allclose(np.asarray(dataset.vertices[row]) - neutral,
                                       levels[level] * model.expression_modes[j], atol=1e-4)
    # combination k adds the same offset to every identity
    for k in range(ict_facekit.COMBINATIONS):
        offsets = [np.asarray(dataset.vertices[i * per_identity + 6 + k]) - np.asarray(dataset.vertices[i * per_identity])
                   for i in range(4)]
        assert all(dataset.records[i * per_identity + 6 + k].expression == f"combo_{k}" for i in range(4))
        for offset in offsets[1:]:
            np.testing.assert_allclose(offset, offsets[0], atol=1e-4)


def test_layout_is_deterministic_and_cached(tmp_path):
    path = small_model().save(tmp_path / "model.npz")
    first = load_dataset(path, progress=False, identities=4, seed=1)
    again = load_dataset(path, progress=False, identities=4, seed=1)
    np.testing.assert_array_equal(np.asarray(first.vertices), np.asarray(again.vertices))
    assert [r.expression for r in first.records] == [r.expression for r in again.records]
    fewer = load_dataset(path, progress=False, identities=2, seed=1)  # identity i does not depend on the count
    np.testing.assert_array_equal(np.asarray(fewer.vertices), np.asarray(first.vertices[:len(fewer)]))
    assert fewer.records == first.records[:len(fewer)]
    other = load_dataset(path, progress=False, identities=4, seed=2)
    assert not np.array_equal(np.asarray(other.vertices[:1]), np.asarray(first.vertices[:1]))
    with pytest.raises(DatasetError, match="identities"):
        load_dataset(path, progress=False, identities=0)


def test_layout_reads_a_facexmodel_folder_through_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(ict_facekit, "import_ict", fake_import)
    folder = build_fake_facexmodel(tmp_path / "FaceXModel")
    assert detect_layout(folder) == "ict-facekit"
    dataset = load_dataset(folder, progress=False, identities=2)
    assert dataset.n_vertices == FAKE_FACE and len(dataset) == 2 * (1 + 53 + ict_facekit.COMBINATIONS)
    narrow = load_dataset(folder, progress=False, identities=2, narrow_face=True)
    assert narrow.n_vertices == FAKE_NARROW and narrow.triangles.max() < FAKE_NARROW


# ---- the real model (shared data) -------------------------------------------------------------
def test_shared_model_matches_the_documented_layout(shared_model):
    model = MorphableModel.load(shared_model)
    assert model.neutral.shape == (9409, 3) and model.faces.shape == (18460, 3)
    assert model.identity_modes.shape == (100, 9409, 3) and model.expression_modes.shape == (53, 9409, 3)
    assert model.expression_names == ICT_EXPRESSION_NAMES and model.narrow_face_vertices == 6706
    assert 150 < np.ptp(model.neutral[:, 0]) < 250  # a head-sized face in mm
    narrow = model.restrict(model.narrow_face_vertices)
    assert narrow.n_vertices == 6706 and len(narrow.faces) == 2 * 6560  # docs/datasets.md: 6560 narrow-area quads


def test_shared_model_loads_as_a_dataset(shared_model):
    assert detect_layout(shared_model) == "ict-facekit"
    assert detect_layout(shared_model.parent) == "ict-facekit"
    dataset = load_dataset(shared_model, progress=False, identities=3)
    assert dataset.vertices.shape == (3 * 62, 9409, 3)
    assert dataset.split().train_subjects and dataset.split().test_subjects
    # the default size stays under 1 GB of float32
    _, _, records = ict_facekit.sample_weights(MorphableModel.load(shared_model), 100, 0)
    assert len(records) == 6200 and len(records) * 9409 * 3 * 4 < 1e9
