"""Training data and models on any benchmark mesh: what the speed and memory benchmarks train and run.

Speed does not depend on what the vertices hold, but a dataset must be paired (a neutral and
expressions per subject) for the trainer to run its real step, and a model must be a real
:class:`~facelab.model.FaceLabModel` for inference to take its real path (normalisation
included). Identities are smooth random deformations of the mesh, expressions smooth local
bumps on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.meshes import BenchmarkMesh

SUBJECTS, EXPRESSIONS = 12, 8


def paired_dataset(mesh: BenchmarkMesh, subjects: int = SUBJECTS, expressions: int = EXPRESSIONS, seed: int = 0):
    """A FaceDataset of ``subjects`` x (neutral + ``expressions``) meshes on ``mesh``'s topology."""
    from facelab.data import FaceDataset, MeshRecord

    rng = np.random.default_rng(seed)
    base = np.asarray(mesh.vertices, dtype=np.float64)
    scale = np.ptp(base, axis=0).max()
    unit = (base - base.mean(axis=0)) / scale
    records, vertices = [], []
    for s in range(subjects):
        frequencies = rng.normal(size=(3, 3)) * 2.0
        identity = base + 0.03 * scale * np.sin(unit @ frequencies + rng.uniform(0, 2 * np.pi, size=3))
        records.append(MeshRecord(f"s{s:03d}", "neutral"))
        vertices.append(identity)
        for e in range(expressions):
            centre = unit[rng.integers(len(unit))]
            weight = np.exp(-np.sum((unit - centre) ** 2, axis=1) / 0.02)[:, None]
            records.append(MeshRecord(f"s{s:03d}", f"expression_{e}"))
            vertices.append(identity + 0.05 * scale * weight * rng.normal(size=3))
    return FaceDataset(f"benchmark data ({mesh.name})", "generic", np.asarray(vertices, dtype=np.float32),
                       np.asarray(mesh.triangles, dtype=np.int64), records)


def training_config(conv: str = "fast", batch_size: int = 16, **overrides):
    """The ``full`` variant's training step as ``facelab train`` runs it, without logging or previews."""
    from facelab.training import TrainConfig

    overrides.setdefault("alignment", "similarity")  # the network's cost, not the choice of frame
    return TrainConfig(data="benchmark", variant="full", conv=conv, batch_size=batch_size, tensorboard=False,
                       preview_every=0, **overrides).validate()


def ready_trainer(dataset, config, run_dir: str | Path):
    """A Trainer set up (data split, network, optimisers, batches) but not yet stepping.

    Uses the trainer's own set-up and step (``prepare``/``train_step``): the benchmarks time the
    exact step ``facelab train`` runs, one at a time, which its public ``run`` does not allow.
    """
    from facelab.training import Trainer

    trainer = Trainer(config, run_dir, dataset=dataset)
    trainer.prepare()
    trainer.network.train()
    return trainer


def trainer_step(trainer):
    """A call that runs the trainer's next step: fetch a batch, D step, then Enc/Dec/G/R step."""
    batches = trainer.train_batches
    position = {"step": 0}

    def step() -> None:
        epoch, index = divmod(position["step"], batches.steps_per_epoch)
        trainer.train_step(*batches.batch(epoch, index))
        position["step"] += 1

    return step


def random_model(mesh: BenchmarkMesh, device: str = "cpu", conv: str = "fast"):
    """A FaceLabModel (``full`` variant, untrained weights) for ``mesh``'s topology, built in memory."""
    import torch

    from facelab.mesh.validation import triangles_hash
    from facelab.model import FaceLabModel
    from facelab.nn import NetworkConfig, NeutralisationNetwork
    from facelab.training.checkpoint import Checkpoint

    triangles = np.asarray(mesh.triangles, dtype=np.int64)
    config = NetworkConfig.for_template(triangles, mesh.n_vertices, variant="full", n_subjects=10, conv=conv)
    torch.manual_seed(0)
    network = NeutralisationNetwork(config, triangles)
    template = np.asarray(mesh.vertices, dtype=np.float32)
    checkpoint = Checkpoint(
        model_state=network.state_dict(), triangles=triangles, template=template,
        norm_mean=template.copy(), norm_std=np.full_like(template, 5.0),
        meta={"network": config.to_dict(), "template_hash": triangles_hash(triangles),
              "subjects": [f"s{i:03d}" for i in range(10)]},
    )
    return FaceLabModel(checkpoint, device=device)
