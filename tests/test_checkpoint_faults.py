"""Damaged checkpoints are refused by name, before any of their values is used."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save

from facelab.cli import EXIT_USER_ERROR
from facelab.errors import MeshError
from facelab.mesh import FaceMesh, write_mesh
from facelab.model import FaceLabModel
from facelab.training import CheckpointError, TrainConfig, Trainer, load_checkpoint
from tests.conftest import make_tiny_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    config = TrainConfig(data="tiny", epochs=1, batch_size=4, seed=0, tensorboard=False, preview_every=0,
                         num_threads=1)
    Trainer(config, root / "run", dataset=make_tiny_dataset()).run()
    return root / "run"


def _copy(run, tmp_path, name="copy"):
    for suffix in (".json", ".safetensors"):
        shutil.copy(run / f"last{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path / name


def _edit_json(path, change):
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("change, key", [
    (lambda m: m.update(version="x"), '"version": \'x\''),
    (lambda m: m.update(subjects=5), '"subjects": 5'),
    (lambda m: m.update(network="abc"), '"network": \'abc\''),
    (lambda m: m["network"].update(latent=-3), '"network/latent": -3'),
    (lambda m: m["position"].update(global_step="many"), '"position/global_step"'),
    (lambda m: m.update(alignment={"kind": "affine"}), '"alignment/kind"'),
    (lambda m: m.update(subjects=["a", "b", 7]), '"subjects/2": 7, expected a subject name'),
    (lambda m: m.update(alignment={"kind": "similarity", "region": [0, 1, -2]}), '"alignment/region/2": -2'),
    (lambda m: m.update(alignment={"kind": "similarity", "region": [0, 1.5]}), '"alignment/region/1": 1.5'),
    (lambda m: m.pop("network"), 'lacks the key "network"'),
])
def test_a_json_value_of_the_wrong_type_is_named(run, tmp_path, change, key):
    path = _copy(run, tmp_path)
    _edit_json(path, change)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert key in message and "expected" in message or "lacks" in message
    assert "\n" not in message


def test_weights_that_do_not_fit_the_described_network_are_said_so(run, tmp_path):
    path = _copy(run, tmp_path)
    _edit_json(path, lambda m: m["network"].update(latent=m["network"]["latent"] + 1))
    with pytest.raises(CheckpointError, match="stored weights do not fit the network its JSON describes") as info:
        FaceLabModel.load(path)
    assert "Error(s) in loading" not in str(info.value)


def _poison(path):
    """A checkpoint whose weights hold a NaN yet whose checksum is valid."""
    tensors_path = path.with_suffix(".safetensors")
    tensors = load_file(str(tensors_path))
    key = next(k for k in tensors if k.startswith("model.") and tensors[k].is_floating_point())
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = float("nan")
    data = save(tensors)
    tensors_path.write_bytes(data)
    _edit_json(path, lambda m: m.update(tensors_sha256=hashlib.sha256(data).hexdigest()))
    return key


def test_non_finite_weights_are_refused_and_no_mesh_is_written(run, tmp_path):
    path = _copy(run, tmp_path)
    key = _poison(path)
    with pytest.raises(CheckpointError, match=f"NaN or infinite values \\(first in the tensor {key}\\)"):
        load_checkpoint(path)
    dataset = make_tiny_dataset()
    source = tmp_path / "face.ply"
    write_mesh(FaceMesh(np.asarray(dataset.vertices[1]), dataset.triangles), source)
    out = tmp_path / "out.ply"
    result = subprocess.run([sys.executable, "-m", "facelab", "neutralize", str(source), "--out", str(out),
                             "--checkpoint", str(path)], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == EXIT_USER_ERROR
    assert "Traceback" not in result.stderr and "NaN or infinite" in result.stderr
    assert not out.exists()


def test_a_mesh_with_a_non_finite_vertex_is_never_written(grid_mesh, tmp_path):
    vertices = grid_mesh.vertices.copy()
    vertices[3, 1] = np.inf
    out = tmp_path / "bad.ply"
    with pytest.raises(MeshError, match="1 of the mesh's .* vertices are NaN or infinite"):
        write_mesh(FaceMesh(vertices, grid_mesh.triangles), out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_the_trainers_own_checkpoints_pass_the_checks(run):
    checkpoint = load_checkpoint(run / "best")
    assert torch.isfinite(torch.cat([v.flatten().float() for v in checkpoint.model_state.values()])).all()
