"""What a damaged or odd mesh file is called: the file's problem in plain words, never a parser's internals."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from facelab.cli import EXIT_USER_ERROR, main
from facelab.errors import FacelabError, MeshError
from facelab.mesh import FaceMesh, read_mesh, write_mesh

PARSER_INTERNALS = ("unpack", "index out of range", "broadcast", "unmatched data", "could not convert")


@pytest.mark.parametrize("name, text", [
    ("pairs.obj", "v 1 2 3\nv 4 5 6\nv 7 8 9\nf 1/1/1/1 2 3\nf 1\n"),
    ("header.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nend_header\n"
                   "1 2\n3 4\n5\n"),
    ("mixed.off", "OFF\n3 1 0\n1 2 3\n4 5\n6 7 8 9 10\n3 0 1 2 7 7\n"),
    ("binary.stl", "solid x\nfacet normal 0 0 1\nouter loop\nvertex 1 2\n"),
])
def test_unparsable_files_are_described_without_parser_internals(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    try:
        read_mesh(path)
    except MeshError as error:
        message = str(error)
        assert str(path) in message and "\n" not in message
        assert not any(internal in message for internal in PARSER_INTERNALS), message
    # a parser that makes sense of the text is fine too: the point is what an error says


def test_a_flipped_byte_in_a_binary_ply_is_not_called_truncated(tmp_path, grid_mesh):
    path = tmp_path / "face.ply"
    write_mesh(grid_mesh, path)
    data = bytearray(path.read_bytes())
    header_end = data.index(b"end_header\n") + len(b"end_header\n")
    face_start = header_end + grid_mesh.n_vertices * 12
    data[face_start] = 200  # a face now claims 200 corners
    path.write_bytes(bytes(data))
    with pytest.raises(MeshError) as info:
        read_mesh(path)
    assert "truncated" not in str(info.value) or "cut short" in str(info.value)


def test_a_coordinate_too_large_for_float32_is_named_without_a_numpy_warning(tmp_path):
    path = tmp_path / "huge.obj"
    path.write_text("v 0 0 0\nv 1e39 0 0\nv 0 1 0\nf 1 2 3\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail here
        with pytest.raises(MeshError, match="too large for 32-bit floats") as info:
            read_mesh(path)
    assert "NaN" not in str(info.value) and "vertex 1" in str(info.value)


def test_an_output_path_under_a_file_is_named(tmp_path, grid_mesh):
    (tmp_path / "plain").write_text("a file")
    with pytest.raises(FacelabError, match="plain is a file, not a folder"):
        write_mesh(grid_mesh, tmp_path / "plain" / "out.ply")


def test_missing_output_folders_are_created(tmp_path, grid_mesh):
    out = tmp_path / "new" / "dir" / "x.ply"
    write_mesh(grid_mesh, out)
    assert read_mesh(out).n_vertices == grid_mesh.n_vertices


def test_inspect_reports_missing_and_degenerate_triangles(tmp_path, capsys):
    points = tmp_path / "points.obj"
    points.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    degenerate = tmp_path / "degenerate.obj"
    degenerate.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 1 1 1\n")
    assert main(["inspect", str(points), "--json"]) == 0
    assert "no triangles" in json.loads(capsys.readouterr().out)["problems"][0]
    assert main(["inspect", str(degenerate), "--json"]) == 0
    problems = " | ".join(json.loads(capsys.readouterr().out)["problems"])
    assert "1 degenerate triangle" in problems and "1 of 4 vertices belong to no triangle" in problems
    good = tmp_path / "good.ply"
    write_mesh(FaceMesh(np.eye(3), np.array([[0, 1, 2]])), good)
    assert main(["inspect", str(good), "--json"]) == 0
    assert "problems" not in json.loads(capsys.readouterr().out)


def test_neutralize_to_a_path_under_a_file_exits_2(tmp_path, capsys):
    from facelab.model import FaceLabModel

    model = FaceLabModel.bundled()
    source = tmp_path / "in.ply"
    write_mesh(model.template, source)
    (tmp_path / "plain").write_text("a file")
    assert main(["neutralize", str(source), "--out", str(tmp_path / "plain" / "o.ply")]) == EXIT_USER_ERROR
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_read_the_system_refuses_is_not_blamed_on_the_files_contents(tmp_path, grid_mesh, monkeypatch):
    import builtins
    import errno

    path = write_mesh(grid_mesh, tmp_path / "face.ply")
    real_open = builtins.open

    def no_more_files(file, *args, **kwargs):
        if str(file) == str(path):
            raise OSError(errno.EMFILE, "Too many open files", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_more_files)
    with pytest.raises(MeshError) as raised:
        read_mesh(path)
    assert str(raised.value) == f"{path} could not be read: the system refused it (Too many open files)."
    monkeypatch.undo()
    assert read_mesh(path).n_vertices == grid_mesh.n_vertices  # the same file reads once the system allows it
