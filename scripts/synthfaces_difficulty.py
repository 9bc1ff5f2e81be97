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

    python scripts/synthfaces_difficulty.py [--out docs/results/synthfaces_difficulty.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_write_text
from facelab.data.synth_dataset import load_synthfaces
from facelab.evaluation.baselines import LinearNeutraliser
from facelab.training.data import make_training_split

REPO = Path(__file__).resolve().parents[1]


def mean_vertex_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean per-vertex Euclidean distance of (B, 3n) flattened meshes, mm."""
    return float(np.linalg.norm((predicted - truth).reshape(len(truth), -1, 3), axis=-1).mean())


def latent_floor(train_neutrals: np.ndarray, test_neutrals: np.ndarray, k: int) -> float:
    """Error of the best rank-k linear code (PCA of the training neutrals) on unseen neutrals."""
    mean = train_neutrals.mean(axis=0)
    _, _, vt = np.linalg.svd(train_neutrals - mean, full_matrices=False)
    basis = vt[:k]
    rebuilt = (test_neutrals - mean) @ basis.T @ basis + mean
    return mean_vertex_error(rebuilt, test_neutrals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "synthfaces_difficulty.json")
    args = parser.parse_args(argv)

    dataset = load_synthfaces()
    split = make_training_split(dataset, train_fraction=0.7, seed=0, validation_fraction=0.0).split
    train, test = list(split.train_subjects), list(split.test_subjects)
    flat = lambda indices: np.asarray(dataset.vertices[np.asarray(indices)], dtype=np.float64).reshape(len(indices), -1)
    neutral_of = {p.subject: p.neutral for p in dataset.pairs}
    test_pairs = dataset.pairs_of(test)

    expressive = flat([p.expressive for p in test_pairs])
    truth = flat([p.neutral for p in test_pairs])
    linear = LinearNeutraliser.fit(dataset, dataset.pairs_of(train))
    per_pair = np.linalg.norm((linear.predict(expressive) - truth).reshape(len(truth), -1, 3), axis=-1).mean(axis=1)
    do_nothing = np.linalg.norm((expressive - truth).reshape(len(truth), -1, 3), axis=-1).mean(axis=1)
    labels = np.array([dataset.records[p.expressive].expression for p in test_pairs])

    train_neutrals = flat([neutral_of[s] for s in train])
    test_neutrals = flat([neutral_of[s] for s in test])
    result = {
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
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_expression"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
