"""How hard SynthFaces' neutralisation is for a linear model and for a 25-d latent code.

Two numbers bound what the paper's network can reach on a dataset, whatever the training budget:

- the **latent floor**: the error of rebuilding unseen subjects' neutral faces from the best
  k-dimensional linear code (PCA of the training subjects' neutrals, k = the paper's 25). A
  non-linear autoencoder can beat it only by the curvature of the identity manifold, which is
  small for SynthFaces' mostly additive identity traits;
- the **linear baseline** (``facelab evaluate``'s reference row): ridge regression from the
  expressive face's PCA coefficients to the neutral face, which carries identity through in 200
  dimensions instead of 25.

When the latent floor lies above the linear baseline, no training recipe makes the network beat
the linear baseline on that data: the expressions are too close to linearly removable and the
identity space too rich for 25 numbers. Written to ``docs/results/synthfaces_difficulty.json``.

With ``--identities N`` (N > 100; the bundled model trains on 2,700) it also fits the linear models
on every training identity, the data such a model saw, on the same 30 test subjects: the
rank-25 linear neutraliser the network starts from (``facelab/training/linear_init.py``), the same
fit at full rank (300 PCA components), and the latent floor from all training neutrals. These are
the fair, same-data references for a model trained on N identities; ``facelab evaluate``'s linear
row is fitted on the default set's 70 training subjects only.

    python scripts/synthfaces_difficulty.py [--identities 900] [--out docs/results/synthfaces_difficulty.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_write_text
from facelab.provenance import provenance
from facelab.data.synth_dataset import load_synthfaces
from facelab.evaluation.baselines import LinearNeutraliser
from facelab.evaluation.metrics import per_vertex_error
from facelab.training.data import make_training_split

REPO = Path(__file__).resolve().parents[1]


def latent_floor(train_neutrals: np.ndarray, test_neutrals: np.ndarray, k: int) -> float:
    """Error (mm) of the best rank-k linear code (PCA of the training neutrals, (B, n, 3)) on
    unseen neutrals (B', n, 3)."""
    train, test = train_neutrals.reshape(len(train_neutrals), -1), test_neutrals.reshape(len(test_neutrals), -1)
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:k]
    rebuilt = (test - mean) @ basis.T @ basis + mean
    return float(per_vertex_error(rebuilt.reshape(test_neutrals.shape), test_neutrals).mean())


def same_data_references(identities: int, test_subjects: list[str]) -> dict:
    """The linear references fitted on every training subject of a larger SynthFaces."""
    from facelab.training.linear_init import fit_linear_neutraliser

    dataset = load_synthfaces(identities)
    split = make_training_split(dataset, train_fraction=0.7, seed=0, validation_fraction=0.0).split
    if set(split.test_subjects) != set(test_subjects):
        raise RuntimeError("the larger set's test subjects differ from the default set's")
    normalisation = dataset.normalisation(split)
    pairs = dataset.pairs_of(split.train_subjects)
    test_pairs = dataset.pairs_of(split.test_subjects)
    expressive = np.asarray(dataset.vertices[[p.expressive for p in test_pairs]])
    truth = np.asarray(dataset.vertices[[p.neutral for p in test_pairs]])
    result = {"identities": identities, "train_subjects": len(split.train_subjects)}
    for name, rank in (("linear_rank25_mm", 25), ("linear_full_rank_mm", 300)):
        predicted = fit_linear_neutraliser(dataset, pairs, normalisation, rank).neutralise(expressive, normalisation)
        result[name] = float(per_vertex_error(predicted, truth).mean())
    neutral_of = {p.subject: p.neutral for p in dataset.pairs}
    meshes = lambda indices: np.asarray(dataset.vertices[np.asarray(indices)], dtype=np.float64)
    result["latent_floor_25_mm"] = latent_floor(meshes([neutral_of[s] for s in split.train_subjects]),
                                                meshes([neutral_of[s] for s in split.test_subjects]), 25)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "synthfaces_difficulty.json")
    parser.add_argument("--identities", type=int, default=100,
                        help="also fit the linear references on this many identities' training subjects")
    args = parser.parse_args(argv)
    stamp = provenance("python scripts/synthfaces_difficulty.py", argv)

    dataset = load_synthfaces()
    split = make_training_split(dataset, train_fraction=0.7, seed=0, validation_fraction=0.0).split
    train, test = list(split.train_subjects), list(split.test_subjects)
    meshes = lambda indices: np.asarray(dataset.vertices[np.asarray(indices)], dtype=np.float64)
    neutral_of = {p.subject: p.neutral for p in dataset.pairs}
    test_pairs = dataset.pairs_of(test)

    expressive = meshes([p.expressive for p in test_pairs])
    truth = meshes([p.neutral for p in test_pairs])
    linear = LinearNeutraliser.fit(dataset, dataset.pairs_of(train))
    per_pair = per_vertex_error(linear.neutralise(expressive), truth).mean(axis=1)
    do_nothing = per_vertex_error(expressive, truth).mean(axis=1)
    labels = np.array([dataset.records[p.expressive].expression for p in test_pairs])

    train_neutrals = meshes([neutral_of[s] for s in train])
    test_neutrals = meshes([neutral_of[s] for s in test])
    result = {
        **stamp,
        "data": dataset.name,
        "train_subjects": len(train),
        "test_subjects": len(test),
        "do_nothing_mm": float(do_nothing.mean()),
        "linear_mm": float(per_pair.mean()),
        "linear_fraction_of_do_nothing": float(per_pair.mean() / do_nothing.mean()),
        "latent_floor_mm": {str(k): latent_floor(train_neutrals, test_neutrals, k) for k in (10, 25, 50)},
        "per_expression": {
            name: {"do_nothing_mm": float(do_nothing[labels == name].mean()),
                   "linear_mm": float(per_pair[labels == name].mean())}
            for name in sorted(set(labels))
        },
    }
    if args.identities > 100:
        result["same_training_data"] = same_data_references(args.identities, test)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_expression"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
