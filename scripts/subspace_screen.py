"""How many expression and identity dimensions the identity-preserving variant keeps, chosen on
validation subjects.

    python scripts/subspace_screen.py CHECKPOINT [--out docs/results/subspace_screen.json]

CHECKPOINT is a trained paper-variant model (``full``) on SynthFaces. For each pair of sizes
(expression U, identity W) the subspaces are fitted on the checkpoint's training pairs exactly
as a training run fits them (:func:`facelab.training.subspaces.fit_subspaces`), and the
checkpoint's own prediction is fused with its input (:class:`facelab.nn.subspace_fusion.SubspaceFusion`)
without any training. Reported on the checkpoint's validation subjects (never the test split):

* ``oracle_mm``: the true neutral face fused with the input, the floor of the design (what is
  lost outside U + W);
* ``fused_mm``: the checkpoint's prediction fused, what the variant starts from;
* ``neutral_in_mm`` and ``noise_0.2mm``: the same for neutral faces in, and for inputs with
  Gaussian noise of 0.2 mm per coordinate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from facelab.atomic import atomic_write_text
from facelab.data.synth_dataset import load_synthfaces
from facelab.evaluation.metrics import per_vertex_error
from facelab.model import FaceLabModel
from facelab.nn.subspace_fusion import SubspaceFusion
from facelab.provenance import provenance
from facelab.training.data import PairBatches
from facelab.training.subspaces import fit_subspaces

REPO = Path(__file__).resolve().parents[1]
SIZES = ((25, 200), (50, 100), (50, 200), (100, 200))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "subspace_screen.json")
    parser.add_argument("--validation-subjects", type=int, default=150)
    args = parser.parse_args(argv)
    stamp = provenance("python scripts/subspace_screen.py", argv)
    torch.manual_seed(0)

    model = FaceLabModel.load(args.checkpoint)
    dataset = load_synthfaces(model.meta["data"]["options"].get("identities", 100))
    fit = model.meta["subjects"]
    validation = model.meta["split"]["validation"][:args.validation_subjects]
    subject_index = {s: i for i, s in enumerate(fit)}
    batches = PairBatches(dataset, dataset.pairs_of(fit), model.normalisation, subject_index, 16, 0,
                          torch.device("cpu"), alignment=model.alignment, template=model.template.vertices)
    pairs = dataset.pairs_of(validation)
    expressive = np.asarray(dataset.vertices[[p.expressive for p in pairs]], dtype=np.float32)
    truth = np.asarray(dataset.vertices[[p.neutral for p in pairs]], dtype=np.float32)
    own = sorted({p.neutral for p in pairs})
    neutral = np.asarray(dataset.vertices[own], dtype=np.float32)
    noisy = expressive + np.random.default_rng(0).normal(0, 0.2, expressive.shape).astype(np.float32)

    def fused(fusion: SubspaceFusion, predicted: np.ndarray | None, inputs: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(inputs), 128):
            x, transform = batches.faces(inputs[start:start + 128])
            with torch.no_grad():
                if predicted is None:
                    p = model.network.neutralise(x)[0]
                else:  # the truth, moved by the input's alignment as in training
                    p = batches.pair_tensors(torch.from_numpy(inputs[start:start + 128]),
                                             torch.from_numpy(predicted[start:start + 128]))[1]
                out.append(batches.restore(fusion(p, x), transform).numpy())
        return np.concatenate(out)

    rows = []
    for expression_dims, identity_dims in SIZES:
        fusion = SubspaceFusion(dataset.n_vertices, expression_dims, identity_dims)
        fusion.set_bases(*fit_subspaces(batches, expression_dims, identity_dims))
        row = {
            "expression_dims": expression_dims, "identity_dims": identity_dims,
            "oracle_mm": float(per_vertex_error(fused(fusion, truth, expressive), truth).mean()),
            "fused_mm": float(per_vertex_error(fused(fusion, None, expressive), truth).mean()),
            "neutral_in_mm": float(per_vertex_error(fused(fusion, None, neutral), neutral).mean()),
            "noise_0.2mm": float(per_vertex_error(fused(fusion, None, noisy), truth).mean()),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    predicted = model.neutralise(expressive)
    report = {
        **stamp,
        "checkpoint_variant": model.variant,
        "validation_subjects": len(validation), "validation_pairs": len(pairs),
        "checkpoint_alone": {
            "prediction_mm": float(per_vertex_error(predicted, truth).mean()),
            "do_nothing_mm": float(per_vertex_error(expressive, truth).mean()),
            "neutral_in_mm": float(per_vertex_error(model.neutralise(neutral), neutral).mean()),
            "noise_0.2mm": float(per_vertex_error(model.neutralise(noisy), truth).mean()),
        },
        "fused": rows,
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
