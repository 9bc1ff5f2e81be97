"""CoMA-style downsampling: a cached template hierarchy, pooling layers, and a smaller network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from facelab.errors import FacelabError
from facelab.mesh.hierarchy import mesh_hierarchy
from facelab.nn import build_network
from facelab.nn.mesh_sampling import MeshResampling
from facelab.training import TrainConfig, Trainer, TrainingCallback
from tests.conftest import make_tiny_dataset


@pytest.fixture(scope="module")
def sphere():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=50.0)  # 642 vertices
    return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces)


def test_the_hierarchy_shrinks_by_the_factors_and_interpolates(sphere):
    vertices, triangles = sphere
    hierarchy = mesh_hierarchy(triangles, (4, 4), vertices)
    sizes = hierarchy.sizes
    assert sizes[0] == 642 and 0.2 < sizes[1] / 642 < 0.3 and 0.2 < sizes[2] / sizes[1] < 0.3
    for level, (down, up) in enumerate(zip(hierarchy.down, hierarchy.up)):
        assert down.shape == (sizes[level + 1], sizes[level]) and up.shape == (sizes[level], sizes[level + 1])
        np.testing.assert_allclose(down.sum(axis=1), 1, rtol=1e-5)  # barycentric rows: weights sum to 1
        np.testing.assert_allclose(up.sum(axis=1), 1, rtol=1e-5)
    # Pooling then unpooling a smooth shape keeps it close (the sphere: radius 50 mm).
    round_trip = hierarchy.up[0] @ (hierarchy.down[0] @ vertices)
    assert np.abs(np.linalg.norm(round_trip, axis=1) - 50).mean() < 1.0


def test_the_hierarchy_is_cached_and_found_by_topology(sphere):
    vertices, triangles = sphere
    first = mesh_hierarchy(triangles, (2,), vertices)
    again = mesh_hierarchy(triangles, (2,))  # no shape: the cached one for this topology
    assert first.sizes == again.sizes
    assert (first.down[0] != again.down[0]).nnz == 0
    with pytest.raises(FacelabError, match="template's shape"):
        mesh_hierarchy(triangles, (3, 3))


def test_resampling_is_a_sparse_product_with_its_transpose_as_gradient(sphere):
    vertices, triangles = sphere
    down = mesh_hierarchy(triangles, (4,), vertices).down[0]
    layer = MeshResampling(down)
    x = torch.randn(3, 642, 5, dtype=torch.float32, requires_grad=True)
    y = layer(x)
    expected = torch.stack([torch.from_numpy(down @ x[b].detach().numpy()) for b in range(3)])
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(y)
    (y * weights).sum().backward()
    expected_grad = torch.stack([torch.from_numpy(down.T @ weights[b].numpy()) for b in range(3)])
    torch.testing.assert_close(x.grad, expected_grad, rtol=1e-5, atol=1e-5)


def test_a_downsampled_network_has_small_dense_layers_and_the_same_weight_names():
    dataset = make_tiny_dataset()
    template = dataset.template().vertices
    paper = build_network(dataset.triangles, dataset.n_vertices, n_subjects=3)
    pooled = build_network(dataset.triangles, dataset.n_vertices, template, n_subjects=3, downsample=(4, 4))
    coarsest = pooled.decoder.coarsest_vertices
    assert coarsest < dataset.n_vertices / 10
    assert pooled.encoder.to_latent.in_features == coarsest * 32
    assert pooled.decoder.from_latent.out_features == coarsest * 32
    assert paper.state_dict().keys() == pooled.state_dict().keys()  # checkpoints stay comparable
    x = torch.from_numpy(dataset.vertices[:4] - template)
    outputs = pooled(x, x)
    assert outputs["rec_n"].shape == (4, dataset.n_vertices, 3)


def test_training_with_downsampling_lowers_the_loss_and_the_model_loads(tmp_path):
    from facelab.model import FaceLabModel

    class Recorder(TrainingCallback):
        def __init__(self):
            self.rec = []

        def on_step(self, event):
            self.rec.append(event.losses["rec"])

    recorder = Recorder()
    config = TrainConfig(data="tiny", epochs=8, batch_size=4, lr=2e-3, seed=3, tensorboard=False, preview_every=0,
                         num_threads=1, downsample=[4])
    trainer = Trainer(config, tmp_path / "run", [recorder], dataset=make_tiny_dataset())
    trainer.run()
    assert np.mean(recorder.rec[-3:]) < 0.7 * np.mean(recorder.rec[:3])
    model = FaceLabModel.load(tmp_path / "run" / "last")
    assert model.network.config.downsample == (4,)
    dataset = make_tiny_dataset()
    predicted = model.neutralise(np.asarray(dataset.vertices[1:3]))
    np.testing.assert_allclose(predicted, trainer.predict(np.array([1, 2])), rtol=1e-4, atol=1e-3)


def test_cli_parses_downsampling_factors():
    from facelab.cli import _downsample_factors

    assert _downsample_factors("4,4,4,4") == [4, 4, 4, 4] and _downsample_factors("none") == []
    with pytest.raises(Exception, match="at least 2"):
        _downsample_factors("4,1")
