"""What training adds beyond a run's start: the validation error before the first step and after.

    python scripts/network_gain.py RUN [RUN ...] [--out docs/results/network_gain.json]

Every run starts from closed-form fits (the rank-25 linear start for the paper's variants; the
subspaces, and the ridge map or the expression mixture inside them, for the identity-preserving
ones), then trains the network. For each run folder this prepares the same run again (its
``config.json``: data, split, seed and fits), measures the validation error of the network as it
starts, without a training step, and sets it beside the best validation error the run reached
(its ``metrics.csv``); for a run with the expression mixture, also the shrinkage its fit chose.
Only validation subjects are read, never the test split. Runs of one
variant and dataset that differ only in their seed are summarised as mean and standard deviation.
The file carries ``generated_by`` (this command, as run) and ``commit``.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_write_text
from facelab.provenance import provenance
from facelab.training import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]


def method_of(config: TrainConfig) -> str:
    """The variant, with the start inside the expression subspace where it has one, and the
    alignment where it is not the default similarity fit."""
    method = config.variant
    if config.fusion_mixture:
        method = f"{config.variant} + expression mixture"
    elif config.fusion_ridge:
        method = f"{config.variant} + ridge start"
    return method if config.alignment == "similarity" else f"{method}, {config.alignment} alignment"


def measure(run: Path, scratch: Path) -> dict:
    """The run's validation error at its start (prepared again) and the best it reached."""
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    config.tensorboard, config.preview_every = False, 0
    validation = []
    if (run / "metrics.csv").is_file():  # a run of --epochs 0 trained no epoch and logged none
        with (run / "metrics.csv").open() as rows:
            validation = [float(row["val_mean_error_mm"]) for row in csv.DictReader(rows)]
    trainer = Trainer(config, scratch / run.name)
    trainer.prepare()
    start = trainer.validation_error()
    best = min(validation, default=start)
    row = {"run": run.name, "data": trainer.dataset.name, "method": method_of(config), "seed": config.seed,
           "epochs": len(validation), "start_val_mm": start, "best_val_mm": best,
           "training_gain_mm": start - best, "training_gain_share": (start - best) / start}
    if trainer.mixture_fit is not None:  # how far the start's expression maps were shrunk, in pairs, and its router
        row["mixture_shrinkage"] = trainer.mixture_fit.shrinkage
        row["mixture_router"] = trainer.mixture_fit.router
    return row


def summary(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over the seeds of each dataset and method."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["data"], row["method"]].append(row)
    out = []
    for (data, method), runs in groups.items():
        entry = {"data": data, "method": method, "seeds": sorted(r["seed"] for r in runs)}
        for key in ("start_val_mm", "best_val_mm", "training_gain_mm"):
            values = np.array([r[key] for r in runs])
            entry[key] = float(values.mean())
            entry[key.replace("_mm", "_std_mm")] = float(values.std(ddof=1)) if len(values) > 1 else None
        out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (config.json and metrics.csv)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "network_gain.json")
    args = parser.parse_args(argv)
    stamp = provenance("python scripts/network_gain.py", argv)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for run in sorted(args.runs):
            rows.append(measure(run, Path(scratch)))
            row = rows[-1]
            print(f"{run.name}: start {row['start_val_mm']:.4f} mm, best {row['best_val_mm']:.4f} mm", flush=True)
    report = {**stamp, "measured_on": "validation subjects of each run's own split", "summary": summary(rows),
              "runs": rows}
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
