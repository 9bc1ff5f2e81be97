"""Write docs/results/ict_facekit_evaluate.json: ``facelab evaluate --json`` of the recommended ICT-FaceKit model.

    python scripts/ict_facekit_report.py [--tables docs/results/ict_facekit_tables.json]
                                         [--method auto] [--seed 0] [--no-robustness]
                                         [--out docs/results/ict_facekit_evaluate.json]

The model is one of the runs the ICT-FaceKit tables trained (``python -m benchmarks.paper_tables
--datasets ict ... --runs DIR --name ict_facekit_tables``, kept in ``DIR``): by default the row
whose best checkpoint has the lowest *validation* error (the recommended model is chosen on
validation subjects, never on the test split). This script finds the runs from the tables' own
``generated_by``, runs ``facelab evaluate --checkpoint RUN --json`` on the chosen one (the
data, identity count and split the model was trained with; the test split read once here), and
writes that JSON with two added keys: ``generated_by`` (the command that trained the model, then
the evaluate command, then this command) and ``commit``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from pathlib import Path

from facelab.atomic import atomic_write_text
from facelab.cli import main as facelab
from facelab.provenance import provenance

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"


def run_folder(tables: dict, label: str, method: str, seed: int) -> Path:
    """The run the tables' command kept for ``method`` and ``seed`` (it needs ``--runs DIR``)."""
    words = shlex.split(tables["generated_by"])
    if "--runs" not in words:
        raise SystemExit(f"the tables were written without --runs, so no run was kept: {tables['generated_by']}")
    runs = Path(words[words.index("--runs") + 1])
    return (runs if runs.is_absolute() else REPO / runs) / f"{label}-{method}-seed{seed}"


def validation_error(run: Path) -> float:
    """The validation error (mm) of a run's best checkpoint."""
    return float(json.loads((run / "best.json").read_text())["metrics"]["val_mean_error_mm"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=Path, default=RESULTS / "ict_facekit_tables.json")
    parser.add_argument("--method", default="auto",
                        help="the tables' row to report (default auto: the lowest validation error)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "ict_facekit_evaluate.json")
    parser.add_argument("--no-robustness", action="store_true",
                        help="leave out evaluate's robustness rows (seven more passes over the test pairs)")
    args = parser.parse_args(argv)
    stamp = provenance("python scripts/ict_facekit_report.py", argv)

    tables = json.loads(args.tables.read_text())
    methods = list(tables["datasets"]["ICT-FaceKit"]["variants"])
    if args.method == "auto":
        validation = {method: validation_error(run_folder(tables, "ICT-FaceKit", method, args.seed))
                      for method in methods}
        args.method = min(validation, key=validation.get)
        print("validation error (mm): " + ", ".join(f"{m} {v:.3f}" for m, v in validation.items())
              + f"; reporting {args.method}")
    run = run_folder(tables, "ICT-FaceKit", args.method, args.seed)
    evaluate = ["evaluate", "--checkpoint", str((run / "best").relative_to(REPO) if run.is_relative_to(REPO) else run / "best")]
    if args.no_robustness:
        evaluate.append("--no-robustness")
    with tempfile.TemporaryDirectory() as tmp:
        status = facelab([*evaluate, "--json", str(Path(tmp) / "evaluate.json")])
        if status != 0:
            return status
        result = json.loads((Path(tmp) / "evaluate.json").read_text())
    result["generated_by"] = [f"{tables['generated_by']}  (at commit {tables['commit']}: trains the model)",
                              "facelab " + " ".join(evaluate) + " --json OUT", stamp["generated_by"]]
    result["commit"] = stamp["commit"]
    atomic_write_text(args.out, json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
