"""Choose the expression mixture's training noise on validation subjects, before any network training.

    python scripts/mixture_screen.py --init CKPT [--identities 2700] [--noise 0 0.1 0.2]
                                     [--neutral-pairs 10] [--subjects 60] [--out docs/results/mixture_screen.json]

For each ``--noise`` level a fine-tuning run of ``--init`` with ``--fusion-mixture`` is prepared
(the model's subspaces, normalisation and alignment kept; one map per expression and the
expression classifier fitted on the training pairs) and measured as it starts, without a training
step, on the first ``--subjects`` of the run's validation subjects (held out of training; the test
split is never read): mean error, share of pairs worse than their input, and the robustness rows
of ``facelab evaluate`` (a neutral face in, 0.2 mm noise, moved faces). Beside each, the same maps
given each pair's true expression label instead of the classifier's guess (``oracle_label_mm``:
how much is lost to telling expressions apart, and a bound on SynthFaces' own ambiguity for this
design). Rows ``start`` (the ``--init`` model) and ``one_ridge_map`` (``--fusion-ridge`` prepared
the same way) come first. The file carries ``generated_by`` (this command, as run) and ``commit``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from facelab.atomic import atomic_write_text
from facelab.data.synth_dataset import load_synthfaces
from facelab.evaluation.evaluate import robustness_rows
from facelab.evaluation.metrics import per_vertex_error
from facelab.model import FaceLabModel
from facelab.provenance import provenance
from facelab.training import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]


def measure(model: FaceLabModel, dataset, pairs) -> dict:
    expressive = np.asarray(dataset.vertices[np.array([p.expressive for p in pairs])])
    truth = np.asarray(dataset.vertices[np.array([p.neutral for p in pairs])])
    errors = per_vertex_error(model.neutralise(expressive), truth).mean(axis=1)
    do_nothing = per_vertex_error(expressive, truth).mean(axis=1)
    neutral_faces = np.asarray(dataset.vertices[np.unique([p.neutral for p in pairs])])
    return {"mean_error_mm": float(errors.mean()), "do_nothing_mm": float(do_nothing.mean()),
            "worse_than_input": float(np.mean(errors > do_nothing)),
            "robustness": robustness_rows(model, dataset, pairs, neutral_faces)}


@torch.no_grad()
def oracle_label_error(trainer: Trainer, dataset, pairs) -> float:
    """Mean error (mm) of the fitted maps applied with each pair's true expression label."""
    fusion, batches = trainer.network.fusion, trainer.train_batches
    mixture, expressions = fusion.mixture, trainer.network.config.fusion_expressions
    errors = []
    for start in range(0, len(pairs), 256):
        chunk = pairs[start:start + 256]
        x_e, transform = batches.faces(dataset.vertices[np.array([p.expressive for p in chunk])])
        x_u, x_w = fusion.coordinates(x_e)
        labels = torch.tensor([expressions.index(p.expression) if p.expression in expressions
                               else expressions.index("other") for p in chunk])
        mapped = torch.einsum("bf,bfo->bo", mixture.features(x_u, x_w), mixture.expert_weight[labels])
        u = mapped + mixture.expert_bias[labels]
        fused = fusion.center + u @ fusion.expression_basis.T + x_w @ fusion.identity_basis.T
        predicted = batches.restore(fused.reshape(x_e.shape), transform).numpy()
        errors.append(per_vertex_error(predicted, np.asarray(dataset.vertices[np.array([p.neutral for p in chunk])])))
    return float(np.concatenate(errors).mean())


def prepared(dataset, args, recipe: dict, scratch: Path, name: str, **options) -> Trainer:
    """A fine-tuning run of ``args.init`` (trained with ``recipe``) prepared (maps fitted), not trained."""
    config = TrainConfig(data="synth", data_options={"identities": args.identities}, variant="identity-preserving",
                         epochs=1, tensorboard=False, preview_every=0, neutral_pairs=args.neutral_pairs,
                         l1_reduction=recipe.get("l1_reduction", "mean"), generator_lr=recipe.get("generator_lr"),
                         **options)
    trainer = Trainer(config, scratch / name, dataset=dataset, init_checkpoint=args.init)
    trainer.prepare()
    return trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", type=Path, required=True,
                        help="an identity-preserving model without an expression mixture to start from")
    parser.add_argument("--identities", type=int, default=2700)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1, 0.2], help="--input-noise levels (mm)")
    parser.add_argument("--neutral-pairs", type=int, default=10)
    parser.add_argument("--subjects", type=int, default=60, help="validation subjects measured")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "mixture_screen.json")
    args = parser.parse_args(argv)
    stamp = provenance("python scripts/mixture_screen.py", argv)

    start = FaceLabModel.load(args.init)
    recipe = start.meta.get("train_config", {})
    if start.network.config.fusion_expressions:
        parser.error(f"{args.init} already holds an expression mixture: start from a model without one "
                     "(e.g. the identity-preserving model it was fine-tuned from)")
    dataset = load_synthfaces(args.identities)
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        ridge = prepared(dataset, args, recipe, Path(scratch), "ridge", fusion_ridge=True)
        subjects = ridge.split.validation_subjects[:args.subjects]
        pairs = dataset.pairs_of(subjects)
        rows["start"] = {"checkpoint": str(args.init), **measure(start, dataset, pairs)}
        rows["one_ridge_map"] = measure(FaceLabModel(ridge.checkpoint(None)), dataset, pairs)
        for noise in args.noise:
            trainer = prepared(dataset, args, recipe, Path(scratch), f"noise-{noise}", fusion_mixture=True,
                               input_noise_mm=noise)
            rows[f"mixture_noise_{noise}"] = {
                "input_noise_mm": noise, "classifier_accuracy": trainer.mixture_fit.accuracy,
                **measure(FaceLabModel(trainer.checkpoint(None)), dataset, pairs),
                "oracle_label_mm": oracle_label_error(trainer, dataset, pairs)}
            print(f"noise {noise}: {rows[f'mixture_noise_{noise}']['mean_error_mm']:.4f} mm", flush=True)
    report = {**stamp, "data": dataset.name, "validation_subjects": len(subjects), "pairs": len(pairs),
              "neutral_pairs": args.neutral_pairs, "rows": rows}
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
