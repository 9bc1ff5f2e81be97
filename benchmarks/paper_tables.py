"""The analogues of the paper's Table 1 (mean neutralisation error, mm) and Table 2 (rank-1).

Trains the paper's variants ``full``, ``no-l2l``, ``no-id`` and ``gca``, and facelab's
``identity-preserving``, with the same seeds and budget on
SynthFaces and on the ICT-FaceKit morphable model (pairs sampled as docs/datasets.md describes),
evaluates each on the unseen test subjects with ``facelab evaluate``'s code, adds the
do-nothing and linear rows measured on the same split, and writes
``docs/results/paper_tables.{md,json}``.

    python -m benchmarks.paper_tables [--epochs 4] [--datasets synth ict] [--seeds 0 1 2] [--out docs/results]
                                      [--variants ...] [--l1-reduction mean|sum] [--name paper_tables]
                                      [--ict-identities 60] [--ict-area face|narrow-face]
                                      [--expression-dims 50] [--identity-dims 200]

ICT-FaceKit is sampled on its face area (9,409 vertices, what ``facelab train`` uses) unless
``--ict-area narrow-face`` (6,706). ``--expression-dims`` and ``--identity-dims`` size the
``identity-preserving`` variant's subspaces (the paper's variants have none).

Runs go to a temporary folder (or ``--runs DIR`` to keep them; ``--reuse-runs`` then evaluates the
runs a previous call finished there with the same configuration instead of training them again,
so a long table can be built over several calls; each run's test evaluation is saved beside it as
``table_evaluation.json`` and read back while its checkpoint and the test subjects are unchanged;
a run that a killed call left unfinished is resumed from its ``last`` checkpoint, saved every
``checkpoint_minutes`` inside an epoch, and its training minutes are then its epochs' own seconds
from ``metrics.csv``, without the start's fits). ``--refresh-baselines`` trains
nothing: it re-measures the do-nothing and linear rows of the tables already in ``--out`` (after a
change to the baselines) and rewrites both files.

``--records DIR`` keeps one small JSON file per (dataset, variant, seed) in ``DIR``: the run's test
evaluation, its training minutes, the configuration it was trained with and the command and commit
that wrote it. A later call with the same ``--records`` (on any machine: the files are committed)
takes a matching record instead of training that run again, so a table of many seeds is built over
several sessions, each run still traceable to the call that wrote its record. A record matches when the
configuration (the data file compared by name) and the test subjects are the same.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from facelab.atomic import atomic_write_text
from facelab.data.layouts import load_dataset
from facelab.evaluation.evaluate import evaluate_model
from facelab.model import FaceLabModel
from facelab.nn.variants import VARIANTS
from facelab.provenance import provenance
from facelab.training import TrainConfig, Trainer
from facelab.training.progress import TqdmProgress

REPO = Path(__file__).resolve().parents[1]
ICT_MODEL = REPO.parent / "shared" / "data" / "ict-facekit" / "ict_face_model.npz"
# Each row: the variant trained and the options it is trained with; the paper's order, then facelab's.
# Every row names its alignment: the rows compare networks in one frame, whatever train's default.
SIMILARITY = {"alignment": "similarity"}
METHODS = {"gca": ("gca", SIMILARITY), "no-l2l": ("no-l2l", SIMILARITY), "no-id": ("no-id", SIMILARITY),
           "full": ("full", SIMILARITY),
           "identity-preserving": ("identity-preserving", SIMILARITY),
           "identity-preserving-ridge": ("identity-preserving", {**SIMILARITY, "fusion_ridge": True}),
           "identity-preserving-mixture": ("identity-preserving", {**SIMILARITY, "fusion_mixture": True}),
           "identity-preserving-mixture-canonical": ("identity-preserving", {"fusion_mixture": True,
                                                                             "alignment": "canonical"})}
ROW_ORDER = tuple(METHODS)
assert {variant for variant, _ in METHODS.values()} == set(VARIANTS)
PAPER_TABLE1 = {"GCA": (3.28, 3.56, 2.88), "w/o L_l2l": (3.45, 3.92, 3.29), "w/o L_id": (3.06, 3.35, 2.56),
                "Ours": (2.73, 3.07, 2.02)}  # CoMA, FWH, FaceScape (mm)
PAPER_TABLE2 = {"GCA": (90.48, 95.64), "w/o L_l2l": (88.75, 97.83), "Ours": (92.34, 99.88)}  # FWH, FaceScape (%)
ROW_NAMES = {"gca": "GCA (adapted)", "no-l2l": "w/o L_l2l", "no-id": "w/o L_id", "full": "Ours (full)",
             "identity-preserving": "identity-preserving (beyond the paper)",
             "identity-preserving-ridge": "identity-preserving, ridge start inside U (beyond the paper)",
             "identity-preserving-mixture": "identity-preserving, expression mixture inside U (beyond the paper)",
             "identity-preserving-mixture-canonical": "identity-preserving, expression mixture, canonical alignment "
                                                      "(beyond the paper)"}


def dataset_sources(names: list[str], ict_identities: int = 60, ict_area: str = "face") -> dict[str, tuple[str, dict]]:
    sources = {}
    for name in names:
        if name == "synth":
            sources["SynthFaces"] = ("synth", {})
        elif name == "ict":
            if not ICT_MODEL.is_file():
                print(f"skipping ICT-FaceKit: {ICT_MODEL} is absent")
                continue
            options = {"identities": ict_identities}
            if ict_area == "narrow-face":
                options["narrow_face"] = True
            sources["ICT-FaceKit"] = (str(ICT_MODEL), options)
    return sources


def linear_start_error(dataset, config: TrainConfig) -> float:
    """Mean test error (mm) of the rank-25 linear neutraliser the networks start from: a trainer of
    ``config`` prepared (linear start, alignment and all) and asked for its predictions at step 0."""
    import dataclasses

    from facelab.evaluation.metrics import per_vertex_error

    start = dataclasses.replace(config, variant="full", weight_init="linear", fusion_ridge=False, fusion_mixture=False)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(start, Path(tmp) / "start", dataset=dataset)
        trainer.prepare()
        test = dataset.pairs_of(trainer.split.test_subjects)
        predicted = trainer.predict(np.array([p.expressive for p in test]))
    return float(per_vertex_error(predicted, np.asarray(dataset.vertices[[p.neutral for p in test]])).mean())


def run(epochs: int, datasets: list[str], runs_dir: Path, batch_size: int, seeds: list[int], ict_identities: int,
        weight_init: str = "auto", l1_reduction: str = "mean", variants: tuple[str, ...] = ROW_ORDER,
        ict_area: str = "face", subspace_dims: tuple[int, int] = (50, 200), reuse_runs: bool = False,
        records: Path | None = None, stamp: dict | None = None, device: str = "cpu") -> dict:
    """Train every variant once per seed; each row keeps every seed's evaluation and their mean
    and spread (population standard deviation over the seeds). With ``reuse_runs``, a run already
    finished in ``runs_dir`` with the same configuration is evaluated, not trained again. With
    ``records``, a matching record there stands for the run, and every run's record is written
    there (stamped with ``stamp``, the provenance of this call). ``device``: where every run trains."""
    results: dict = {"epochs": epochs, "batch_size": batch_size, "device": device, "seeds": list(seeds),
                     "weight_init": weight_init,
                     "l1_reduction": l1_reduction, "expression_dims": subspace_dims[0],
                     "identity_dims": subspace_dims[1], "datasets": {}}
    for label, (source, options) in dataset_sources(datasets, ict_identities, ict_area).items():
        dataset = load_dataset(source, **options)
        split = dataset.split()
        rows, baselines, start = {}, None, None
        for method in variants:
            variant, method_options = METHODS[method]
            runs = {}
            for seed in seeds:
                config = TrainConfig(data=source, data_options=options, variant=variant, epochs=epochs,
                                     batch_size=batch_size, seed=seed, tensorboard=False, preview_every=0,
                                     weight_init=weight_init, l1_reduction=l1_reduction,
                                     expression_dims=subspace_dims[0], identity_dims=subspace_dims[1],
                                     device=device, **method_options)
                if start is None and config.linear_start:
                    start = linear_start_error(dataset, config)
                    print(f"{label}: the rank-{config.latent} linear start, {start:.3f} mm")
                run_dir = runs_dir / f"{label}-{method}-seed{seed}"
                record_file = records / f"{label}-{method}-seed{seed}.json" if records else None
                record = read_record(record_file, config, split) if record_file else None
                if record is not None:
                    print(f"{label} {method} seed {seed}: the record {record_file.name} "
                          f"(written at commit {record['commit']})")
                    runs[str(seed)] = {**record["evaluation"], "train_minutes": record["train_minutes"],
                                       "record": {key: record[key] for key in ("generated_by", "commit")}}
                    continue
                started = time.perf_counter()
                minutes = finished_run_minutes(run_dir, config) if reuse_runs else None
                if minutes is None and reuse_runs and interrupted_run(run_dir, config):
                    print(f"{label} {method} seed {seed}: resuming the interrupted run in {run_dir}")
                    Trainer(config, run_dir, [TqdmProgress()], dataset=dataset, resume=True).run()
                    minutes = finished_run_minutes(run_dir, config)
                if minutes is None:
                    Trainer(config, run_dir, [TqdmProgress()], dataset=dataset).run()
                    minutes = (time.perf_counter() - started) / 60
                else:
                    print(f"{label} {method} seed {seed}: reusing the finished run in {run_dir}")
                key = evaluation_key(run_dir, split)
                evaluation = saved_evaluation(run_dir, key) if reuse_runs else None
                if evaluation is None:
                    model = FaceLabModel.load(run_dir / "best")
                    evaluation = evaluate_model(model, dataset, split, baselines=baselines is None, robustness=False)
                    baselines = baselines or evaluation.pop("baselines")
                    save_evaluation(run_dir, key, evaluation)
                evaluation["train_minutes"] = minutes
                runs[str(seed)] = evaluation
                if record_file:
                    write_record(record_file, config, key, evaluation, stamp or {})
                print(f"{label} {method} seed {seed}: {evaluation['mean_error_mm']:.3f} mm, "
                      f"rank-1 {evaluation['rank1']:.3f}")
            rows[method] = {"seeds": runs, **{f"{key}_over_seeds": _spread([r[key] for r in runs.values()])
                                                for key in ("mean_error_mm", "rank1", "worse_than_input")}}
        if baselines is None:  # every run's evaluation was saved
            from facelab.evaluation.evaluate import split_baselines

            baselines = split_baselines(dataset, split)
        results["datasets"][label] = {"name": dataset.name, "options": options, "vertices": dataset.n_vertices,
                                      "test_subjects": len(split.test_subjects), "variants": rows,
                                      "baselines": baselines, "linear_start_mm": start}
    return results


def finished_run_minutes(run_dir: Path, config: TrainConfig) -> float | None:
    """The training minutes (metrics.csv) of a run in ``run_dir`` that finished every epoch of
    ``config``, the same configuration; None if there is no such run."""
    import csv

    if not _holds_run_of(run_dir, config) or not (run_dir / "best.json").is_file():
        return None
    try:
        rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    except (OSError, ValueError):
        return None
    if len(rows) < config.epochs:
        return None
    return sum(float(row["seconds"]) for row in rows) / 60


def interrupted_run(run_dir: Path, config: TrainConfig) -> bool:
    """Whether ``run_dir`` holds a run of ``config`` with a ``last`` checkpoint to resume from (a
    mid-epoch one included: ``checkpoint_minutes``). Asked only of a run that
    :func:`finished_run_minutes` did not find finished, so it is one that stopped early."""
    from facelab.training.checkpoint import checkpoint_exists

    return _holds_run_of(run_dir, config) and checkpoint_exists(run_dir / "last")


def _holds_run_of(run_dir: Path, config: TrainConfig) -> bool:
    """Whether ``run_dir``'s ``config.json`` is ``config``: read through TrainConfig, so that a
    field added since the run was saved takes its default."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return TrainConfig.from_dict(saved).to_dict() == config.to_dict()


def evaluation_key(run_dir: Path, split) -> dict:
    """What a saved evaluation was measured on: the checkpoint's bytes and the test subjects."""
    import hashlib

    digest = hashlib.sha256()
    with (run_dir / "best.safetensors").open("rb") as file:
        for block in iter(lambda: file.read(1 << 24), b""):
            digest.update(block)
    return {"checkpoint_sha256": digest.hexdigest(), "test_subjects": sorted(map(str, split.test_subjects))}


def saved_evaluation(run_dir: Path, key: dict) -> dict | None:
    """The test evaluation a previous call saved beside this run's checkpoint, if it was measured
    on the same checkpoint and test subjects (``key``, from :func:`evaluation_key`: the test split
    is then not read again)."""
    try:
        saved = json.loads((run_dir / "table_evaluation.json").read_text())
        if saved["key"] == key:
            return saved["evaluation"]
    except (OSError, ValueError, KeyError):
        pass
    return None


def save_evaluation(run_dir: Path, key: dict, evaluation: dict) -> None:
    atomic_write_text(run_dir / "table_evaluation.json", json.dumps({"key": key, "evaluation": evaluation}, indent=1))


def _comparable_config(config: dict) -> dict:
    """A configuration as records compare it: the data file by its name, so that a record made in
    another checkout (another absolute path to the same file) still matches."""
    data = config.get("data", "")
    return {**config, "data": Path(data).name if Path(data).suffix else data}


def read_record(path: Path, config: TrainConfig, split) -> dict | None:
    """The record in ``path`` if it was made with ``config`` on the same test subjects; else None."""
    try:
        record = json.loads(path.read_text())
        saved = TrainConfig.from_dict(record["config"]).to_dict()
        if (_comparable_config(saved) == _comparable_config(config.to_dict())
                and record["test_subjects"] == sorted(map(str, split.test_subjects))):
            return record
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def write_record(path: Path, config: TrainConfig, key: dict, evaluation: dict, stamp: dict) -> None:
    """One run's record: ``evaluation`` (with its ``train_minutes``) of the checkpoint and test
    subjects ``key`` names (from :func:`evaluation_key`), trained with ``config``."""
    minutes = evaluation["train_minutes"]
    evaluation = {name: value for name, value in evaluation.items() if name != "train_minutes"}
    record = {**stamp, "config": config.to_dict(), "test_subjects": key["test_subjects"],
              "checkpoint_sha256": key["checkpoint_sha256"], "train_minutes": minutes, "evaluation": evaluation}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1))


def _spread(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "min": float(np.min(values)),
            "max": float(np.max(values))}


def refresh_baselines(results: dict) -> dict:
    """``results`` with every dataset's do-nothing and linear rows measured again on its split."""
    from facelab.evaluation.evaluate import split_baselines

    sources = dataset_sources(["synth", "ict"])
    for label, data in results["datasets"].items():
        dataset = load_dataset(sources[label][0], **data["options"])
        data["baselines"] = split_baselines(dataset, dataset.split())
        print(f"{data['name']}: linear {data['baselines']['linear']['mean_error_mm']:.3f} mm")
    return results


def _cell(row: dict, key: str, scale: float = 1.0, digits: int = 3) -> str:
    spread = row[f"{key}_over_seeds"]
    if spread["std"] == 0 and spread["min"] == spread["max"]:
        return f"{scale * spread['mean']:.{digits}f}"
    return f"{scale * spread['mean']:.{digits}f} ± {scale * spread['std']:.{digits}f}"


def markdown(results: dict) -> str:
    labels = list(results["datasets"])
    data = results["datasets"]
    variants = [v for v in ROW_ORDER if all(v in data[l]["variants"] for l in labels)]
    seeds = results["seeds"]
    lines = [f"generated_by: `{results['generated_by']}` at commit {results['commit']}", "",
             f"Each variant trained {results['epochs']} epochs (batch {results['batch_size']}, "
             f"{'on ' + results['device'] + ', ' if results.get('device', 'cpu') != 'cpu' else ''}seeds "
             f"{', '.join(map(str, seeds))}, weight initialisation {results.get('weight_init', 'random')}, |.|_1 as a "
             f"{results.get('l1_reduction', 'mean')}) on the same split; errors are mean per-vertex Euclidean "
             f"distances on unseen test subjects, as mean ± standard deviation over the {len(seeds)} seeds.", ""]
    for label in labels:
        lines.append(f"- {label}: {data[label]['name']}, {data[label]['vertices']:,} vertices, "
                     f"{data[label]['test_subjects']} unseen test subjects.")
    if any(method.startswith("identity-preserving") for method in variants):
        lines.append(f"- identity-preserving: expression subspace U of {results.get('expression_dims', 50)} "
                     f"dimensions, identity subspace W of {results.get('identity_dims', 200)}; its ridge row "
                     "starts inside U as the ridge map of the input (`--fusion-ridge`).")
    commits = sorted({run["record"]["commit"][:7] for l in labels for row in data[l]["variants"].values()
                      for run in row["seeds"].values() if "record" in run})
    if commits:
        lines.append(f"- Runs taken from their records (`--records`), written at commits {', '.join(commits)}; "
                     "the JSON names each run's.")
    lines += ["",
             "### Table 1 analogue: mean neutralisation error (mm)", "",
             "| method | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
    lines.append("| do nothing (expressive as neutral) | " + " | ".join(
        f"{data[l]['baselines']['do_nothing']['mean_error_mm']:.3f}" for l in labels) + " |")
    lines.append("| linear (ridge on PCA) | " + " | ".join(
        f"{data[l]['baselines']['linear']['mean_error_mm']:.3f}" for l in labels) + " |")
    if any(data[l].get("linear_start_mm") is not None for l in labels):
        lines.append("| rank-25 linear start (every variant at step 0, seed 0) | " + " | ".join(
            "-" if data[l].get("linear_start_mm") is None else f"{data[l]['linear_start_mm']:.3f}" for l in labels) + " |")
    for variant in variants:
        lines.append(f"| {ROW_NAMES[variant]} | " + " | ".join(
            _cell(data[l]["variants"][variant], "mean_error_mm") for l in labels) + " |")
    lines += ["", "### Error as a share of doing nothing (%)", "",
              "| method | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
    lines.append("| linear (ridge on PCA) | " + " | ".join(
        f"{100 * data[l]['baselines']['linear']['mean_error_mm'] / data[l]['baselines']['do_nothing']['mean_error_mm']:.1f}"
        for l in labels) + " |")
    for variant in variants:
        lines.append(f"| {ROW_NAMES[variant]} | " + " | ".join(
            f"{100 * data[l]['variants'][variant]['mean_error_mm_over_seeds']['mean'] / data[l]['baselines']['do_nothing']['mean_error_mm']:.1f}"
            for l in labels) + " |")
    lines += ["", "### Table 2 analogue: rank-1 identification (%)", "",
              "| method | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
    lines.append("| linear (predicted meshes, cosine) | " + " | ".join(
        f"{100 * data[l]['baselines']['linear']['rank1']:.2f}" for l in labels) + " |")
    for variant in variants:
        lines.append(f"| {ROW_NAMES[variant]} | " + " | ".join(
            _cell(data[l]["variants"][variant], "rank1", 100, 2) for l in labels) + " |")
    lines += ["", "### Share of test pairs worse than their input (%)", "",
              "| method | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
    lines.append("| linear (ridge on PCA) | " + " | ".join(
        f"{100 * data[l]['baselines']['linear']['worse_than_input']:.1f}" for l in labels) + " |")
    for variant in variants:
        lines.append(f"| {ROW_NAMES[variant]} | " + " | ".join(
            _cell(data[l]["variants"][variant], "worse_than_input", 100, 1) for l in labels) + " |")
    lines += ["", "The paper's numbers (CoMA / FWH / FaceScape, mm; rank-1 on FWH / FaceScape, %):", "",
              "| method | Table 1 (mm) | Table 2 (%) |", "| --- | --- | --- |"]
    for name, errors in PAPER_TABLE1.items():
        ranks = PAPER_TABLE2.get(name)
        lines.append(f"| {name} | {' / '.join(map(str, errors))} | {' / '.join(map(str, ranks)) if ranks else '-'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--variants", nargs="+", default=list(ROW_ORDER), choices=ROW_ORDER)
    parser.add_argument("--ict-identities", type=int, default=60, help="identities sampled from the ICT model")
    parser.add_argument("--ict-area", choices=("face", "narrow-face"), default="face",
                        help="ICT-FaceKit's face area (9,409 vertices, default) or its narrow face area (6,706)")
    parser.add_argument("--expression-dims", type=int, default=50, help="identity-preserving: U's dimensions")
    parser.add_argument("--identity-dims", type=int, default=200, help="identity-preserving: W's dimensions")
    parser.add_argument("--datasets", nargs="+", default=["synth", "ict"], choices=["synth", "ict"])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    parser.add_argument("--runs", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--weight-init", choices=("auto", "linear", "random"), default="auto",
                        help="how every variant starts (default auto: the rank-25 linear start)")
    parser.add_argument("--l1-reduction", choices=("mean", "sum"), default="mean",
                        help="how every variant reduces |.|_1 (TrainConfig.l1_reduction; default mean)")
    parser.add_argument("--name", default="paper_tables", help="file name of the tables in --out, without suffix")
    parser.add_argument("--reuse-runs", action="store_true",
                        help="evaluate the runs already finished in --runs with the same configuration instead of "
                             "training them again (the others are trained)")
    parser.add_argument("--records", type=Path, default=None,
                        help="take each run from its record in this folder where one matches, and write a record "
                             "of every run there (see the module's docstring)")
    parser.add_argument("--device", default="cpu", help="where every run trains: cpu (default) or cuda")
    parser.add_argument("--refresh-baselines", action="store_true",
                        help="train nothing: re-measure the do-nothing and linear rows of the tables in --out")
    args = parser.parse_args(argv)
    stamp = provenance("python -m benchmarks.paper_tables", argv)
    if args.refresh_baselines:
        results = refresh_baselines(json.loads((args.out / f"{args.name}.json").read_text()))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = run(args.epochs, args.datasets, args.runs or Path(tmp), args.batch_size, args.seeds,
                          args.ict_identities, args.weight_init, args.l1_reduction, tuple(args.variants),
                          args.ict_area, (args.expression_dims, args.identity_dims), args.reuse_runs,
                          args.records, stamp, args.device)
    results.update(stamp)
    atomic_write_text(args.out / f"{args.name}.json", json.dumps(results, indent=2))
    atomic_write_text(args.out / f"{args.name}.md", markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
