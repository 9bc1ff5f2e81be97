"""Reading and writing meshes: formats, vertex order, quads, per-vertex values, atomicity."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.errors import MeshError
from facelab.mesh import FaceMesh, read_mesh, read_ply_vertex_property, write_mesh


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".off"])
def test_round_trip_keeps_vertex_order_and_triangles(tmp_path, grid_mesh, suffix):
    path = write_mesh(grid_mesh, tmp_path / f"face{suffix}")
    loaded = read_mesh(path)
    np.testing.assert_allclose(loaded.vertices, grid_mesh.vertices, atol=1e-5)
    np.testing.assert_array_equal(loaded.triangles, grid_mesh.triangles)
    assert loaded.vertices.dtype == np.float32


def test_ascii_and_binary_ply(tmp_path, grid_mesh):
    write_mesh(grid_mesh, tmp_path / "a.ply", binary=False)
    write_mesh(grid_mesh, tmp_path / "b.ply", binary=True)
    assert (tmp_path / "a.ply").read_bytes().startswith(b"ply\nformat ascii")
    assert b"binary_little_endian" in (tmp_path / "b.ply").read_bytes()[:60]
    for name in ("a.ply", "b.ply"):
        np.testing.assert_allclose(read_mesh(tmp_path / name).vertices, grid_mesh.vertices, atol=1e-5)


def test_stl_is_merged_into_a_connected_mesh(tmp_path, grid_mesh):
    write_mesh(grid_mesh, tmp_path / "face.stl")
    loaded = read_mesh(tmp_path / "face.stl")
    assert loaded.n_vertices == grid_mesh.n_vertices
    assert loaded.n_triangles == grid_mesh.n_triangles
    # the same set of positions, each triangle still spanning the same three points
    np.testing.assert_allclose(np.sort(loaded.vertices, axis=0), np.sort(grid_mesh.vertices, axis=0), atol=1e-4)
    np.testing.assert_allclose(loaded.vertices[loaded.triangles], grid_mesh.vertices[grid_mesh.triangles], atol=1e-4)


def test_obj_texture_seams_do_not_split_or_reorder_vertices(tmp_path):
    (tmp_path / "uv.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 0 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvt 0.5 0.5\nvt 0.2 0.2\n"
        "f 1/1 2/2 3/3 4/4\nf 2/5 5/6 3/3\n"
    )
    mesh = read_mesh(tmp_path / "uv.obj")
    np.testing.assert_array_equal(mesh.vertices[:, 0], [0, 1, 1, 0, 2])
    assert mesh.n_triangles == 3  # the quad is split in two


@pytest.mark.parametrize("suffix,text", [
    (".obj", "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n"),
    (".off", "OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"),
    (".ply", "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
             "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"),
])
def test_quads_are_split_into_triangles(tmp_path, suffix, text):
    (tmp_path / f"quad{suffix}").write_text(text)
    mesh = read_mesh(tmp_path / f"quad{suffix}")
    assert mesh.n_vertices == 4
    assert mesh.n_triangles == 2
    assert set(mesh.triangles.ravel()) == {0, 1, 2, 3}


def test_unit_scale_converts_to_millimetres(tmp_path, grid_mesh):
    metres = grid_mesh.with_vertices(grid_mesh.vertices / 1000)
    write_mesh(metres, tmp_path / "m.ply")
    np.testing.assert_allclose(read_mesh(tmp_path / "m.ply", unit_scale=1000).vertices, grid_mesh.vertices, rtol=1e-5, atol=1e-4)


def test_per_vertex_error_property_is_written_to_ply(tmp_path, grid_mesh):
    error = np.linspace(0, 3, grid_mesh.n_vertices)
    write_mesh(grid_mesh, tmp_path / "pred.ply", vertex_scalars={"error": error})
    np.testing.assert_allclose(read_ply_vertex_property(tmp_path / "pred.ply", "error"), error, rtol=1e-6)
    np.testing.assert_allclose(read_mesh(tmp_path / "pred.ply").vertices, grid_mesh.vertices, atol=1e-5)


def test_per_vertex_values_need_ply(tmp_path, grid_mesh):
    with pytest.raises(MeshError, match="only be written to PLY"):
        write_mesh(grid_mesh, tmp_path / "pred.obj", vertex_scalars={"error": np.zeros(grid_mesh.n_vertices)})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path, grid_mesh):
    target = tmp_path / "keep.ply"
    write_mesh(grid_mesh, target)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_mesh(grid_mesh, target, vertex_scalars={"error": np.zeros(3)})  # wrong length
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.ply"]  # no temporary left behind


def test_face_mesh_rejects_bad_shapes():
    with pytest.raises(ValueError):
        FaceMesh(np.zeros((4, 2)), np.zeros((1, 3)))
    with pytest.raises(ValueError):
        FaceMesh(np.zeros((4, 3)), np.zeros((1, 4)))


def test_obj_with_several_materials_keeps_the_file_order(tmp_path):
    (tmp_path / "mtl.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 0 0\nv 2 1 0\n"
        "usemtl skin\nf 1 2 3\nf 1 3 4\nusemtl lips\nf 2 5 6\nf 2 6 3\n"
    )
    mesh = read_mesh(tmp_path / "mtl.obj")
    assert mesh.n_vertices == 6
    np.testing.assert_array_equal(mesh.vertices[:, 0], [0, 1, 1, 0, 2, 2])
    np.testing.assert_array_equal(mesh.triangles, [[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 2]])


def test_written_files_get_the_usual_permissions(tmp_path, grid_mesh):
    import os

    umask = os.umask(0o022)
    try:
        path = write_mesh(grid_mesh, tmp_path / "shared.ply")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_ply_cut_inside_its_header_is_called_truncated(tmp_path):
    (tmp_path / "cut.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n")
    with pytest.raises(MeshError, match="could not be read as PLY: it is truncated"):
        read_mesh(tmp_path / "cut.ply")


def test_a_write_the_system_refuses_is_one_sentence_and_leaves_the_old_file(tmp_path, grid_mesh):
    from facelab.atomic import atomic_path
    from facelab.errors import FacelabError

    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(FacelabError, match=r"cannot write .*a_file/face\.ply: .*a_file is a file, not a folder"):
        write_mesh(grid_mesh, tmp_path / "a_file" / "face.ply")
    old = write_mesh(grid_mesh, tmp_path / "face.ply").read_bytes()
    # The disk fills up half-way through the write: the old file stays, no temporary is left.
    with pytest.raises(FacelabError, match="No space left on device"):
        with atomic_path(tmp_path / "face.ply") as tmp:
            tmp.write_bytes(b"ply\n")
            raise OSError(28, "No space left on device")
    assert (tmp_path / "face.ply").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "face.ply"]
    # An OSError about another file than the one written, or one that is no path's fault (an I/O
    # error of the device, a bug), is not turned into a write error.
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "face.ply"):
            (tmp_path / "missing.txt").read_text()
    with pytest.raises(OSError, match="Input/output error") as info:
        with atomic_path(tmp_path / "face.ply"):
            raise OSError(5, "Input/output error")
    assert not isinstance(info.value, FacelabError)
    assert (tmp_path / "face.ply").read_bytes() == old


def test_a_folder_given_as_a_mesh_is_called_a_folder(tmp_path):
    (tmp_path / "scans").mkdir()
    with pytest.raises(MeshError, match="scans is a folder: expected a mesh file"):
        read_mesh(tmp_path / "scans")
