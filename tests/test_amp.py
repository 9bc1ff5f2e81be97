"""Mixed precision: bf16 training lowers the loss, and the sparse products stay float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelab.errors import FacelabError
from facelab.nn import MeshChebConv, build_network
from facelab.training import TrainConfig, Trainer, TrainingCallback
from tests.conftest import make_tiny_dataset


class LossRecorder(TrainingCallback):
    def __init__(self):
        self.rec = []

    def on_step(self, event):
        self.rec.append(event.losses["rec"])


def _config(**overrides) -> TrainConfig:
    values = dict(data="tiny", epochs=8, batch_size=4, lr=2e-3, seed=3, tensorboard=False, preview_every=0,
                  weight_init="random",
                  num_threads=1, amp="bf16")
    values.update(overrides)
    return TrainConfig(**values)


def test_bf16_training_lowers_the_loss(tmp_path):
    recorder = LossRecorder()
    trainer = Trainer(_config(), tmp_path / "amp", [recorder], dataset=make_tiny_dataset())
    trainer.run()
    assert np.mean(recorder.rec[-3:]) < 0.7 * np.mean(recorder.rec[:3])
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())  # master weights stay float32


def test_chebyshev_layers_run_in_float32_under_autocast():
    dataset = make_tiny_dataset(subjects=2, expressions=1)
    network = build_network(dataset.triangles, dataset.n_vertices, n_subjects=2)
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = (inputs[0].dtype, output.dtype)
        return hook

    for name, module in network.named_modules():
        if isinstance(module, MeshChebConv) or name in ("encoder.to_latent", "decoder.from_latent"):
            module.register_forward_hook(record(name))
    x = torch.randn(2, dataset.n_vertices, 3)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        outputs = network(x, x)
    assert seen["encoder.to_latent"][1] == torch.bfloat16  # the dense layers take bf16
    assert all(dtypes == (torch.float32, torch.float32) for name, dtypes in seen.items() if ".convs." in name)
    assert outputs["rec_n"].dtype == torch.float32


def test_an_unknown_precision_is_one_clear_sentence(tmp_path):
    with pytest.raises(FacelabError, match="mixed precision") as info:
        Trainer(_config(amp="fp8"), tmp_path / "x", dataset=make_tiny_dataset())
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: bf16 on GPU needs one")
def test_bf16_training_on_cuda_lowers_the_loss(tmp_path):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16 support")
    recorder = LossRecorder()
    Trainer(_config(device="cuda", num_threads=None), tmp_path / "amp", [recorder], dataset=make_tiny_dataset()).run()
    assert np.mean(recorder.rec[-3:]) < 0.7 * np.mean(recorder.rec[:3])
