"""``facelab neutralize`` and ``identify``: predictions of a mesh, a folder or a dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facelab.commands.common import add_folder_input, add_no_align, load_model, positive_int
from facelab.errors import FacelabError

# ---- facelab neutralize --------------------------------------------------------------------------
def add_neutralize(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "neutralize", help="predict the neutral face (and identity) of an expressive mesh, a folder or a dataset",
        description="Write the predicted neutral mesh, print the top-5 predicted training subjects and, with a "
                    "ground truth, the mean and max per-vertex error (the PLY output then carries an 'error' "
                    "property). For a folder or dataset, --out is a folder: every mesh is predicted in batches and written "
                    "there in the input's layout and format, with a report neutralize.csv; outputs that exist are "
                    "kept unless --overwrite.",
    )
    parser.add_argument("input", type=Path,
                        help="an expressive mesh registered to the model's template, or a folder of meshes, a dataset "
                             "folder, a morphable-model .npz or 'synth'")
    parser.add_argument("--out", required=True, type=Path,
                        help="the predicted neutral mesh (.ply, .obj, .off, .stl), or for a folder or dataset the "
                             "output folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint (default: the bundled model)")
    parser.add_argument("--ground-truth", type=Path, default=None,
                        help="the true neutral mesh, to measure the error (a dataset's pairs give it for each mesh)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--format", dest="mesh_format", choices=("ply", "obj", "off"), default=None,
                        help="folder or dataset: the format of every output (default: each input's own; ply for "
                             "generated data)")
    parser.add_argument("--overwrite", action="store_true",
                        help="folder or dataset: predict again the meshes whose output exists (default: keep them)")
    # facelab.batch's defaults, as literals: importing it here would load the renderer for every command
    add_folder_input(parser, batch_size=32, workers_do="read and write meshes")
    add_no_align(parser)
    parser.set_defaults(handler=_run_neutralize)


def _run_neutralize(args: argparse.Namespace) -> int:
    from facelab.batch import is_batch_input
    from facelab.evaluation.metrics import per_vertex_error
    from facelab.mesh import read_mesh, write_mesh

    if is_batch_input(args.input):
        return _run_neutralize_batch(args)
    if args.mesh_format is not None:
        raise FacelabError("--format is for a folder or dataset: for one mesh, the extension of --out chooses "
                           "the format.")
    model = load_model(args.checkpoint, align=not args.no_align)
    mesh = model.check_mesh(read_mesh(args.input))
    truth = model.check_mesh(read_mesh(args.ground_truth)) if args.ground_truth else None
    analysis = model.analyse(mesh.vertices)
    predicted = mesh.with_vertices(analysis.neutral, name=f"{mesh.name} (neutralised)")
    result: dict = {"output": str(args.out),
                    "top5": [[s, p] for s, p in model.top_subjects_of_embedding(analysis.embedding, 5)]}
    if analysis.expression_probabilities is not None:
        result["expressions"] = [[e, p] for e, p in model.top_expressions_of_reading(analysis.expression_probabilities)]
    scalars = None
    if truth is not None:
        error = per_vertex_error(predicted.vertices, truth.vertices)
        result["mean_error_mm"] = float(error.mean())
        result["max_error_mm"] = float(error.max())
        if args.out.suffix.lower() == ".ply":
            scalars = {"error": error}
    write_mesh(predicted, args.out, vertex_scalars=scalars)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"wrote {args.out}")
    if result["top5"]:
        print("top-5 predicted subjects:")
        for subject, probability in result["top5"]:
            print(f"  {subject:<24} {probability:.3f}")
    if result.get("expressions"):
        print("expression read as: " + ", ".join(f"{e} {p:.3f}" for e, p in result["expressions"]))
    if truth is not None:
        print(f"error: mean {result['mean_error_mm']:.3f} mm, max {result['max_error_mm']:.3f} mm")
    return 0


def _run_neutralize_batch(args: argparse.Namespace) -> int:
    from facelab.batch import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, list_meshes, neutralise_meshes

    if args.ground_truth is not None:
        raise FacelabError("--ground-truth is for one mesh: for a dataset, its pairs give each mesh's ground truth.")
    options = {"identities": args.identities} if args.identities else {}
    source = list_meshes(args.input, layout=args.layout, exclude=args.out, **options)
    model = load_model(args.checkpoint, align=not args.no_align)
    report = neutralise_meshes(model, source, args.out, fmt=args.mesh_format, overwrite=args.overwrite,
                               batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
                               workers=args.workers or DEFAULT_WORKERS)
    if report.nothing_done:
        reason = report.skipped[0]["reason"].rstrip(".")
        raise FacelabError(f"none of the {len(report.rows)} meshes of {args.input} could be neutralised, as "
                           f"{report.path} lists (first: {reason}).")
    if args.json:
        print(json.dumps(report.summary(), indent=2))
        return 0
    kept = report.count("kept")
    print(f"wrote {report.count('written')} neutralised meshes to {args.out}"
          + (f", kept {kept} from an earlier run (--overwrite redoes them)" if kept else ""))
    if report.skipped:
        print(f"skipped {len(report.skipped)} mesh(es) that could not be neutralised (listed with the reason in "
              f"{report.path})")
    mean_error = report.mean_error_mm()
    if mean_error is not None:
        print(f"mean error to the ground-truth neutral: {mean_error:.3f} mm")
    print(f"report: {report.path}")
    return 0


# ---- facelab identify ----------------------------------------------------------------------------
def add_identify(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "identify", help="rank the subjects of a gallery dataset for a probe mesh or folder",
        description="Rank the subjects of a gallery (each subject's neutral faces) for each probe mesh by cosine "
                    "similarity of identity embeddings, as 'facelab evaluate' computes rank-k identification.",
    )
    parser.add_argument("probe", type=Path, help="a mesh registered to the model's template, or a folder of them")
    parser.add_argument("--gallery", required=True, help="'synth', a dataset folder or a morphable-model .npz")
    parser.add_argument("--k", type=positive_int, default=5, help="subjects listed per probe (default 5)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint (default: the bundled model)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_no_align(parser)
    parser.set_defaults(handler=_run_identify)


def _run_identify(args: argparse.Namespace) -> int:
    from facelab.batch import identify

    model = load_model(args.checkpoint, align=not args.no_align)
    result = identify(model, args.probe, args.gallery, k=args.k)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"gallery: {result['gallery']} ({result['gallery_subjects']} subjects)")
    for probe in result["probes"]:
        print(probe["probe"] + (f" (subject {probe['subject']})" if probe["subject"] else ""))
        for match in probe["matches"]:
            print(f"  {match['rank']:>3}  {match['subject']:<24} {match['similarity']:.3f}")
    if result["skipped"]:
        print(f"skipped {len(result['skipped'])} probe(s) that could not be used:")
        for skipped in result["skipped"]:
            print(f"  {skipped['probe']}: {skipped['reason']}")
    return 0
