"""``facelab synth``, ``inspect``, ``import-ict`` and ``export``: writing and reading datasets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facelab.commands.common import positive_int

# ---- facelab synth ------------------------------------------------------------------------------
def add_synth(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth", help="write the built-in SynthFaces dataset as mesh files",
        description="Write SynthFaces (each identity: a neutral and 12 CoMA expressions at 3 intensities) "
                    "in the generic folder layout <out>/<subject>/<expression>.<format> with a manifest.csv.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (new, or a previous facelab output)")
    parser.add_argument("--identities", type=positive_int, default=100, help="number of identities (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--format", choices=("ply", "obj"), default="ply", help="mesh file format (default ply)")
    parser.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from facelab.data.layouts.generic import write_generic
    from facelab.data.synth_dataset import load_synthfaces

    dataset = load_synthfaces(identities=args.identities, seed=args.seed)
    write_generic(dataset, args.out, args.format)
    print(f"wrote {len(dataset)} meshes of {len(dataset.subjects)} subjects to {args.out}")
    return 0


# ---- facelab inspect -----------------------------------------------------------------------------
def add_inspect(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "inspect", help="say what a mesh file or dataset is",
        description="Describe a mesh file (format, vertices, triangles, size) or a dataset "
                    "(layout, subjects, expressions, pairs, split sizes). PATH may be 'synth'.",
    )
    parser.add_argument("path", help="a mesh file, a dataset folder, a morphable-model .npz, or 'synth'")
    parser.add_argument("--format", dest="layout", default=None,
                        help="force a dataset layout (synth, coma, facewarehouse, facescape, ict-facekit, generic)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from facelab.inspection import inspect_path

    info = inspect_path(args.path, layout=args.layout)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_info(info)
    return 0


def _print_info(info: dict, indent: str = "") -> None:
    width = max(len(key) for key in info)
    for key, value in info.items():
        label = key.replace("_", " ")
        if isinstance(value, dict):
            print(f"{indent}{label}:")
            _print_info(value, indent + "  ")
        elif isinstance(value, list):
            print(f"{indent}{label}:")
            for item in value:
                print(f"{indent}  - {item}")
        else:
            print(f"{indent}{label:<{width}}  {value}")


# ---- facelab import-ict ---------------------------------------------------------------------------
def add_import_ict(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import-ict", help="convert an ICT-FaceKit FaceXModel folder into a compact morphable-model file",
        description="Read ICT-FaceKit's FaceXModel/ folder (neutral, 100 identity and 53 expression shapes, in cm), "
                    "keep the face area, and write a compact .npz morphable model in millimetres.",
    )
    parser.add_argument("facexmodel", type=Path, help="the FaceXModel/ folder of an ICT-FaceKit clone")
    parser.add_argument("--out", required=True, type=Path, help="the .npz file to write")
    parser.set_defaults(handler=_run_import_ict)


def _run_import_ict(args: argparse.Namespace) -> int:
    from facelab.data.morphable_model import import_ict

    import_ict(args.facexmodel, args.out)
    print(f"wrote {args.out}")
    return 0


# ---- facelab export ------------------------------------------------------------------------------
def add_export(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export", help="write any dataset facelab reads as mesh files in the generic layout",
        description="Write a dataset (SynthFaces, CoMA, FaceWarehouse, FaceScape, ICT-FaceKit, a generic folder) as "
                    "<out>/<subject>/[<group>/]<expression>.<format> in millimetres, with a manifest.csv of its "
                    "labels; facelab reads the folder back as the same dataset.",
    )
    parser.add_argument("data", help="'synth', a dataset folder or a morphable-model .npz")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder (new, empty, or a previous facelab export)")
    parser.add_argument("--format", dest="mesh_format", choices=("ply", "obj"), default="ply",
                        help="mesh file format (default ply)")
    parser.add_argument("--layout", default=None,
                        help="force a dataset layout (synth, coma, facewarehouse, facescape, ict-facekit, generic)")
    parser.add_argument("--identities", type=positive_int, default=None,
                        help="identities to generate for synth or morphable-model data (default 100)")
    parser.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from facelab.batch import export_dataset

    options = {"identities": args.identities} if args.identities else {}
    dataset = export_dataset(args.data, args.out, args.mesh_format, layout=args.layout, **options)
    print(f"wrote {len(dataset)} meshes of {len(dataset.subjects)} subjects to {args.out}")
    return 0
