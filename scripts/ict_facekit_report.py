"""Write docs/results/ict_facekit_evaluate.json: ``facelab evaluate --json`` of the recommended ICT-FaceKit model.

    python scripts/ict_facekit_report.py [--tables docs/results/ict_facekit_tables.json]
                                         [--variant identity-preserving] [--seed 0]
                                         [--out docs/results/ict_facekit_evaluate.json]

The model is one of the runs the ICT-FaceKit tables trained (``python -m benchmarks.paper_tables
--datasets ict ... --runs DIR --name ict_facekit_tables``, kept in ``DIR``): this script finds it
from the tables' own ``generated_by``, runs ``facelab evaluate --checkpoint RUN --json`` on it (the
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


def run_folder(tables: dict, label: str, variant: str, seed: int) -> Path:
    """The run the tables' command kept for ``variant`` and ``seed`` (it needs ``--runs DIR``)."""
    words = shlex.split(tables["generated_by"])
    if "--runs" not in words:
        raise SystemExit(f"the tables were written without --runs, so no run was kept: {tables['generated_by']}")
    runs = Path(words[words.index("--runs") + 1])
    return (runs if runs.is_absolute() else REPO / runs) / f"{label}-{variant}-seed{seed}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=Path, default=RESULTS / "ict_facekit_tables.json")
    parser.add_argument("--variant", default="identity-preserving", help="the recommended model's variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "ict_facekit_evaluate.json")
    args = parser.parse_args(argv)
    stamp = provenance("python scripts/ict_facekit_report.py", argv)

    tables = json.loads(args.tables.read_text())
    run = run_folder(tables, "ICT-FaceKit", args.variant, args.seed)
    evaluate = ["evaluate", "--checkpoint", str((run / "best").relative_to(REPO) if run.is_relative_to(REPO) else run / "best")]
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
