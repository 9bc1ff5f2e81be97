"""Choose how many blends per subject the expression mixture learns, on validation subjects.

    python scripts/blend_screen.py [--identities 2700] [--blends 0 1 2 4 8] [--subjects 100]
                                   [--out docs/results/blend_screen.json]

For each ``--blends`` count, the bundled model's recipe (``docs/training.md``: the identity-preserving
variant with the expression mixture, 10 neutral pairs, inputs noised by up to 0.1 mm, the
template fit, no epoch) is prepared with ``--mixture-blends`` at that count, its maps and
classifier fitted, and measured on the first ``--subjects`` validation subjects of the run (held
out of the fit; the test split is never read): the mean error on the subjects' own pairs (one
expression each) and its share worse than the input, a neutral face in, 0.2 mm of input noise,
and ``blended_mm``, faces doing two expressions at once (``facelab evaluate``'s definitions; the
moved-input rows are left out: the alignment makes them equal to the first). The recogniser's warm-up and the linear
start are left out (``--recognizer-warmup 0 --weight-init random``): with no epoch they do not
touch the prediction, only the identity and the time. ``chosen`` is the count with the lowest
mean of the two errors (single expressions and blends, each set weighted alike). The file carries
``generated_by`` (this command, as run) and ``commit``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_write_text
from facelab.data.synth_dataset import load_synthfaces
from facelab.evaluation.evaluate import NOISE_MM, blended_rows
from facelab.evaluation.metrics import per_vertex_error
from facelab.model import FaceLabModel
from facelab.provenance import provenance
from facelab.training import TrainConfig, Trainer
from facelab.training.config import ExperimentalOptions

REPO = Path(__file__).resolve().parents[1]


def measure(model: FaceLabModel, dataset, pairs) -> dict:
    expressive = np.asarray(dataset.vertices[np.array([p.expressive for p in pairs])], dtype=np.float32)
    truth = np.asarray(dataset.vertices[np.array([p.neutral for p in pairs])], dtype=np.float32)
    errors = per_vertex_error(model.neutralise(expressive), truth).mean(axis=1)
    do_nothing = per_vertex_error(expressive, truth).mean(axis=1)
    neutral_faces = np.asarray(dataset.vertices[np.unique([p.neutral for p in pairs])])
    noise = np.random.default_rng(0).normal(0.0, NOISE_MM, expressive.shape).astype(np.float32)
    return {"mean_error_mm": float(errors.mean()), "do_nothing_mm": float(do_nothing.mean()),
            "worse_than_input": float(np.mean(errors > do_nothing)),
            "neutral_in_mm": float(per_vertex_error(model.neutralise(neutral_faces), neutral_faces).mean()),
            f"noise_{NOISE_MM}mm": float(per_vertex_error(model.neutralise(expressive + noise), truth).mean()),
            **blended_rows(model, dataset, pairs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=2700)
    parser.add_argument("--blends", type=int, nargs="+", default=[0, 1, 2, 4, 8], help="blends per subject")
    parser.add_argument("--subjects", type=int, default=100, help="validation subjects measured")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "blend_screen.json")
    args = parser.parse_args(argv)
    stamp = provenance("python scripts/blend_screen.py", argv)

    dataset = load_synthfaces(args.identities)
    rows, pairs = {}, None
    with tempfile.TemporaryDirectory() as scratch:
        for blends in args.blends:
            config = TrainConfig(data="synth", data_options={"identities": args.identities},
                                 variant="identity-preserving", fusion_mixture=True, mixture_blends=blends,
                                 neutral_pairs=10, input_noise_mm=0.1, alignment="similarity", epochs=0,
                                 weight_init="random", tensorboard=False, preview_every=0,
                                 experimental=ExperimentalOptions(recognizer_warmup_samples=0))
            trainer = Trainer(config, Path(scratch) / f"blends-{blends}", dataset=dataset)
            trainer.prepare()
            if pairs is None:
                pairs = dataset.pairs_of(trainer.split.validation_subjects[:args.subjects])
            row = {"classifier_accuracy": trainer.mixture_fit.accuracy,
                   **measure(FaceLabModel(trainer.checkpoint(None)), dataset, pairs)}
            row["single_and_blended_mm"] = (row["mean_error_mm"] + row["blended_mm"]) / 2
            rows[str(blends)] = row
            print(f"blends {blends}: {row['mean_error_mm']:.4f} mm one expression, "
                  f"{row['blended_mm']:.4f} mm two", flush=True)
    chosen = min(rows, key=lambda count: rows[count]["single_and_blended_mm"])
    report = {**stamp, "data": dataset.name, "validation_subjects": len({p.subject for p in pairs}),
              "pairs": len(pairs), "chosen": int(chosen), "rows": rows}
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
