"""Which expression router the recommended recipe's fit should try, measured where subjects are few.

    python scripts/router_screen.py [--identities 100] [--fresh 100] [--out docs/results/router_screen.json]

The recommended recipe (facelab/training/recipe.py) is prepared, its fits made and no training step
taken, on ``--identities`` SynthFaces identities: once with each router of
facelab/training/mixture_fit.py's ``ROUTERS`` alone, and once with the fit choosing among them on
held-out training subjects (what facelab does, row ``router_chosen``). Each is measured on the run's validation subjects
and on every pair of ``--fresh`` identities drawn with SynthFaces seed 1 (people no run saw; the
test split is never read): mean error, do-nothing, share of pairs worse than their input, the
expression read right, and the error with each pair's true expression label instead of the
router's reading (``oracle_label_mm``: what a perfect reading would give these maps). The file
carries ``generated_by`` (this command, as run) and ``commit``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_write_text
from facelab.data.synth_dataset import load_synthfaces
from facelab.evaluation.metrics import expression_recognition, per_vertex_error
from facelab.model import FaceLabModel
from facelab.provenance import provenance
from facelab.training import Trainer, mixture_fit
from facelab.training.recipe import recommended_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mixture_screen import oracle_label_error  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def measure(trainer: Trainer, dataset, pairs) -> dict:
    model = FaceLabModel(trainer.checkpoint(None))
    expressive = np.asarray(dataset.vertices[np.array([p.expressive for p in pairs])])
    truth = np.asarray(dataset.vertices[np.array([p.neutral for p in pairs])])
    analysis = model.analyse(expressive)
    errors = per_vertex_error(analysis.neutral, truth).mean(axis=1)
    do_nothing = per_vertex_error(expressive, truth).mean(axis=1)
    read = expression_recognition([p.expression for p in pairs], model.expressions, analysis.expression_probabilities)
    return {"pairs": len(pairs), "mean_error_mm": float(errors.mean()), "do_nothing_mm": float(do_nothing.mean()),
            "worse_than_input": float(np.mean(errors > do_nothing)),
            "expression_read_right": read["accuracy"],
            "oracle_label_mm": oracle_label_error(trainer, dataset, pairs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=100)
    parser.add_argument("--fresh", type=int, default=100, help="identities of SynthFaces seed 1 measured")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "router_screen.json")
    args = parser.parse_args(argv)
    stamp = provenance("python scripts/router_screen.py", argv)
    dataset = load_synthfaces(args.identities)
    fresh = load_synthfaces(args.fresh, seed=1)
    everything = mixture_fit.ROUTERS
    try:
        with tempfile.TemporaryDirectory() as scratch:
            rows = _rows(args.identities, dataset, fresh, everything, Path(scratch))
    finally:
        mixture_fit.ROUTERS = everything
    report = {**stamp, "data": dataset.name, "fresh_data": fresh.name, "rows": rows}
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _rows(identities: int, dataset, fresh, everything: tuple[str, ...], scratch: Path) -> dict:
    """One row per router of ``everything`` alone, and one for the fit choosing among them."""
    rows = {}
    for name, routers in [*((f"{kind}_router", (kind,)) for kind in everything), ("router_chosen", everything)]:
        mixture_fit.ROUTERS = routers
        config = recommended_config(data="synth", data_options={"identities": identities},
                                    tensorboard=False, preview_every=0)
        trainer = Trainer(config, scratch / name, dataset=dataset)
        trainer.prepare()
        fit = trainer.mixture_fit
        rows[name] = {"routers_tried": list(routers), "router": fit.router,
                      "router_held_out_mm": fit.router_errors, "shrinkage": fit.to_dict()["shrinkage"],
                      "training_subjects": len(trainer.split.fit_subjects),
                      "validation": measure(trainer, dataset, dataset.pairs_of(trainer.split.validation_subjects)),
                      "fresh_identities": measure(trainer, fresh, fresh.pairs)}
        print(name, json.dumps(rows[name]), flush=True)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
