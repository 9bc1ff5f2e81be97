"""Every bad mesh file gets one clear sentence naming the problem and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.errors import MeshError, TopologyMismatchError
from facelab.mesh import FaceMesh, check_matches_template, read_mesh, triangles_hash, write_mesh


def _one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert message.rstrip().endswith(".")


def test_missing_file(tmp_path):
    with pytest.raises(MeshError, match="does not exist") as info:
        read_mesh(tmp_path / "nope.ply")
    _one_sentence(str(info.value))


def test_empty_file(tmp_path):
    (tmp_path / "empty.obj").write_bytes(b"")
    with pytest.raises(MeshError, match="is empty") as info:
        read_mesh(tmp_path / "empty.obj")
    _one_sentence(str(info.value))


def test_unsupported_extension(tmp_path):
    (tmp_path / "face.xyz").write_text("1 2 3\n")
    with pytest.raises(MeshError, match="unsupported extension '.xyz'.*expected one of .obj, .ply, .stl, .off"):
        read_mesh(tmp_path / "face.xyz")


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "dir.ply").mkdir()
    with pytest.raises(MeshError, match="is a folder"):
        read_mesh(tmp_path / "dir.ply")


@pytest.mark.parametrize("binary", [True, False])
def test_truncated_ply(tmp_path, grid_mesh, binary):
    write_mesh(grid_mesh, tmp_path / "full.ply", binary=binary)
    data = (tmp_path / "full.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(MeshError, match="truncated") as info:
        read_mesh(tmp_path / "cut.ply")
    _one_sentence(str(info.value))


def test_truncated_obj_with_faces_beyond_its_vertices(tmp_path):
    (tmp_path / "cut.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    with pytest.raises(MeshError, match="refer to vertices it does not contain|refer to vertex") as info:
        read_mesh(tmp_path / "cut.obj")
    _one_sentence(str(info.value))


def test_garbage_is_unparsable(tmp_path):
    (tmp_path / "junk.ply").write_bytes(b"this is not a mesh \x00\x01\x02")
    with pytest.raises(MeshError, match="could not be read as PLY") as info:
        read_mesh(tmp_path / "junk.ply")
    _one_sentence(str(info.value))


def test_no_vertices(tmp_path):
    (tmp_path / "novert.obj").write_text("# only a comment\n")
    with pytest.raises(MeshError, match="has no vertices"):
        read_mesh(tmp_path / "novert.obj")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_coordinates(tmp_path, value):
    (tmp_path / "bad.obj").write_text(f"v 0 0 0\nv 1 0 {value}\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(MeshError, match="NaN or infinite coordinates.*first at vertex 1") as info:
        read_mesh(tmp_path / "bad.obj")
    _one_sentence(str(info.value))


def test_template_vertex_count_mismatch(grid_mesh):
    other = FaceMesh(grid_mesh.vertices[:24], grid_mesh.triangles[:30], name="scan.ply")
    with pytest.raises(TopologyMismatchError, match="expected 30 vertices in the template's order, got 24") as info:
        check_matches_template(other, grid_mesh.triangles, grid_mesh.n_vertices)
    _one_sentence(str(info.value))


def test_template_triangle_mismatch(grid_mesh):
    shuffled = grid_mesh.triangles.copy()
    shuffled[0] = [0, 2, 13]
    other = FaceMesh(grid_mesh.vertices, shuffled, name="scan.ply")
    with pytest.raises(TopologyMismatchError, match="1 of its 40 triangles are not among the template's"):
        check_matches_template(other, grid_mesh.triangles, grid_mesh.n_vertices)


def test_reordered_triangles_still_match_the_template(grid_mesh):
    rng = np.random.default_rng(0)
    rolled = np.roll(grid_mesh.triangles[rng.permutation(grid_mesh.n_triangles)], 1, axis=1)
    other = FaceMesh(grid_mesh.vertices, rolled)
    assert check_matches_template(other, grid_mesh.triangles, grid_mesh.n_vertices) is other
    assert triangles_hash(rolled) == triangles_hash(grid_mesh.triangles)
    assert triangles_hash(grid_mesh.triangles[:-1]) != triangles_hash(grid_mesh.triangles)
