"""Write docs/results/bundled_model.json whole: the bundled model measured against its targets.

    python scripts/bundled_model_report.py [--checkpoint models/synthfaces] [--out docs/results/bundled_model.json]
                                           [--figures docs/results/figures]

What it measures, each on subjects the model never trained on:

* ``evaluation``: ``facelab evaluate``'s JSON on the default SynthFaces test split (30 subjects,
  read once here), with the linear baseline fitted on the model's own training identities, the
  robustness rows and the share of pairs worse than their input.
* ``per_expression_vs_do_nothing``: each expression at each intensity, the model's mean error
  beside doing nothing, and the expressions where the model is not below it.
* ``fresh_identities``: every pair of a SynthFaces set drawn with another seed (identities no
  run has seen), mean error and share worse than the input.
* ``training``: the recipe, steps and minutes from the checkpoint, and its validation error.

From the same evaluation it writes ``facelab evaluate --figures``' figures into ``--figures``
(the error map beside doing nothing, per-expression bars, the cumulative error curve).

The file carries ``generated_by`` (this command, as run) and ``commit``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_write_text
from facelab.data.synth_dataset import load_synthfaces
from facelab.evaluation.evaluate import evaluate_model_with_errors
from facelab.evaluation.figures import write_evaluation_figures
from facelab.evaluation.metrics import per_vertex_error
from facelab.model import BUNDLED_MODEL, FaceLabModel
from facelab.provenance import provenance

REPO = Path(__file__).resolve().parents[1]


def fresh_identities(model: FaceLabModel, identities: int, seed: int) -> dict:
    dataset = load_synthfaces(identities, seed)
    pairs = dataset.pairs
    expressive = np.asarray(dataset.vertices[[p.expressive for p in pairs]])
    truth = np.asarray(dataset.vertices[[p.neutral for p in pairs]])
    errors = per_vertex_error(model.neutralise(expressive), truth).mean(axis=1)
    do_nothing = per_vertex_error(expressive, truth).mean(axis=1)
    return {"data": dataset.name, "pairs": len(pairs), "mean_error_mm": float(errors.mean()),
            "do_nothing_mm": float(do_nothing.mean()), "worse_than_input": float(np.mean(errors > do_nothing))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "bundled_model.json")
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "results" / "figures")
    parser.add_argument("--fresh-seed", type=int, default=1, help="SynthFaces seed of the fresh identities (default 1)")
    args = parser.parse_args(argv)
    stamp = provenance("python scripts/bundled_model_report.py", argv)

    model = FaceLabModel.load(args.checkpoint)
    meta = model.meta
    identities = meta.get("data", {}).get("options", {}).get("identities", 100)
    dataset = load_synthfaces(identities)  # extra identities only train: the test split is the default one
    split = dataset.split_of(meta.get("train_config"))
    evaluation, errors = evaluate_model_with_errors(model, dataset, split)
    write_evaluation_figures(errors, model.template.vertices, model.triangles, args.figures)
    do_nothing = evaluation["baselines"]["do_nothing"]["per_expression"]
    per_expression = {name: {"model_mm": value, "do_nothing_mm": do_nothing[name]}
                      for name, value in evaluation["per_expression"].items()}
    train_config = meta.get("train_config", {})
    metrics = meta.get("metrics", {})
    report = {
        **stamp,
        "checkpoint": str(args.checkpoint.relative_to(REPO) if args.checkpoint.is_relative_to(REPO) else args.checkpoint),
        "variant": model.variant,
        "evaluation": evaluation,
        "per_expression_vs_do_nothing": {
            "rows": per_expression,
            "not_below_do_nothing": sorted(n for n, row in per_expression.items() if row["model_mm"] >= row["do_nothing_mm"]),
        },
        "fresh_identities": fresh_identities(model, 100, args.fresh_seed),
        "training": {
            "data": meta.get("data", {}).get("name"),
            "variant": train_config.get("variant"),
            "alignment": model.alignment.kind,
            "steps": meta.get("position", {}).get("global_step"),
            "minutes": None if metrics.get("seconds") is None else metrics["seconds"] / 60,
            "validation_error_mm": metrics.get("val_mean_error_mm"),
            "train_config": train_config,
        },
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}: {evaluation['mean_error_mm']:.3f} mm on {evaluation['test_pairs']} test pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
