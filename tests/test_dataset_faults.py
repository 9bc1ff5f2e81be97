"""Dataset reading that fails or skips files says which and why, every time, and leaves no staging files."""

from __future__ import annotations

import errno
import json

import pytest

from facelab.cli import main
from facelab.data.layouts import load_dataset
from facelab.errors import DatasetError, FacelabError
from facelab.paths import cache_dir
from tests.test_layouts import build_facescape, face


def test_skipped_files_are_listed_on_every_load_and_by_inspect(tmp_path, capsys):
    root = build_facescape(tmp_path / "fs")
    first = load_dataset(root, progress=False)
    cached = load_dataset(root, progress=False)  # from the cache: no file is read again
    for dataset in (first, cached):
        listed = dataset.summary()["warnings"]
        assert any("7_jaw_forward.obj" in line and "skipped" in line for line in listed)
    for _ in range(2):
        assert main(["inspect", str(root), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert any("7_jaw_forward.obj" in line for line in info["warnings"])
    assert main(["inspect", str(root)]) == 0
    out = capsys.readouterr().out
    assert "7_jaw_forward.obj" in out


def test_a_full_disk_while_caching_removes_the_staging_files(tmp_path, monkeypatch):
    import facelab.data.vertex_cache as vertex_cache

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vertex_cache, "preallocated_memmap", full_disk)
    root = build_facescape(tmp_path / "fs")
    with pytest.raises((OSError, FacelabError)):
        load_dataset(root, progress=False)
    assert not list(cache_dir("datasets").glob("*.staging-*"))
    assert not list(cache_dir("datasets").glob(".*.tmp-*"))


def test_a_manifest_row_naming_a_folder_says_it_is_a_folder(tmp_path):
    from facelab.mesh import write_mesh

    write_mesh(face(1), tmp_path / "m" / "n.ply")
    (tmp_path / "manifest.csv").write_text("subject,expression,path\nA,neutral,m\n")
    with pytest.raises(DatasetError, match="line 2 of .*manifest.csv lists .* which is a folder"):
        load_dataset(tmp_path, progress=False)
