"""``python -m benchmarks``: run the suite (or ``--only`` some of it) and write the JSON and Markdown results."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
from pathlib import Path

from benchmarks.meshes import COMA_VERTICES, FACESCAPE_VERTICES
from benchmarks.options import Options
from benchmarks.results import machine_info
from benchmarks.torch_device import available_devices
from facelab.cpu_memory import keep_freed_memory
from facelab.provenance import provenance

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
#: Every benchmark: name -> module with ``run(options) -> list[Result]``, in the order they run.
BENCHMARKS = {
    "cheb_layer": "benchmarks.cheb_layer",
    "training_step": "benchmarks.training_step",
    "neutralise": "benchmarks.neutralise",
    "shared_cores": "benchmarks.shared_cores",
    "batch_commands": "benchmarks.batch_commands",
    "training_memory": "benchmarks.training_memory",
    "time_to_quality": "benchmarks.time_to_quality",
    "app": "benchmarks.app",
    "profile": "benchmarks.op_profile",
}
CPU_ONLY = {"shared_cores", "batch_commands", "training_memory", "time_to_quality", "app", "profile"}


def _names(values: list[str] | None) -> list[str]:
    if not values:
        return list(BENCHMARKS)
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r}: expected one of {', '.join(BENCHMARKS)}")
    return [name for name in BENCHMARKS if name in names]


def _size(text: str) -> str | int:
    return text if text == "template" else int(text.replace(",", "").replace("_", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME",
                        help=f"run only these (repeatable or comma-separated): {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", type=Path, default=None,
                        help="default: docs/results/benchmarks.json for a full run; none with --only or --quick")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="default: docs/results/benchmarks.md for a full run; none with --only or --quick")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few repetitions, short budgets")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                        help="all: the CPU, and CUDA when torch sees a GPU")
    parser.add_argument("--app-training-seconds", type=float, default=20.0)
    parser.add_argument("--sizes", nargs="+", type=_size, default=["template", COMA_VERTICES, FACESCAPE_VERTICES],
                        help=argparse.SUPPRESS)  # the tests use a tiny mesh
    args = parser.parse_args(argv)
    stamp = provenance("python -m benchmarks", argv)
    keep_freed_memory()  # as the facelab command and the app do

    names = _names(args.only)
    devices = available_devices(args.device)
    options = Options(quick=args.quick, devices=devices, sizes=tuple(args.sizes),
                      app_training_seconds=args.app_training_seconds)
    document = {**stamp, "machine": machine_info(list(devices)),
                "settings": {"quick": args.quick, "benchmarks": names, "sizes": list(args.sizes),
                             "app_training_seconds": args.app_training_seconds},
                "results": [], "errors": []}
    started = time.perf_counter()
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        run_options = dataclasses.replace(options, devices=("cpu",)) if name in CPU_ONLY else options
        began = time.perf_counter()
        print(f"[{name}] running ...", file=sys.stderr, flush=True)
        try:
            results = module.run(run_options)
        except Exception as error:  # one broken benchmark (no Xvfb, no bundled model) spares the rest
            document["errors"].append({"benchmark": name, "error": f"{type(error).__name__}: {error}"})
            print(f"[{name}] FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            continue
        for result in results:
            document["results"].append(result.to_dict())
            met = {None: "", True: "  met", False: "  NOT MET"}[result.met]
            value = "-" if result.value is None else f"{result.value:.3g}"
            print(f"  {result.name:28s} {result.device:4s} n={result.n_vertices!s:>6}  {value} {result.unit}{met}",
                  file=sys.stderr, flush=True)
        print(f"[{name}] {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    document["settings"]["total_seconds"] = time.perf_counter() - started
    # Only a full run replaces the committed results; a partial or quick one writes where it is told.
    full_run = not args.only and not args.quick
    json_path = args.json or (RESULTS / "benchmarks.json" if full_run else None)
    markdown_path = args.markdown or (RESULTS / "benchmarks.md" if full_run else None)
    if json_path is not None:
        _write(json_path, json.dumps(document, indent=1))
    if markdown_path is not None:
        from benchmarks.report import markdown

        _write(markdown_path, markdown(document))
    written = [str(path) for path in (json_path, markdown_path) if path is not None]
    print(f"wrote {' and '.join(written)}" if written else "nothing written (pass --json/--markdown)", file=sys.stderr)
    return 1 if document["errors"] else 0


def _write(path: Path, text: str) -> None:
    from facelab.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


if __name__ == "__main__":
    raise SystemExit(main())
