"""``facelab render`` and ``gui``: the app's figure off-screen, and the app itself."""

from __future__ import annotations

import argparse
from pathlib import Path

from facelab.commands.common import add_folder_input, add_no_align, load_model, positive_int
from facelab.errors import FacelabError

# ---- facelab render ------------------------------------------------------------------------------
def _figure_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 1 and 4, got {text}") from None
    if not 1.0 <= value <= 4.0:
        raise argparse.ArgumentTypeError(f"expected a number between 1 and 4, got {text}")
    return value


def add_render(commands: argparse._SubParsersAction) -> None:
    from facelab.render import COLORMAPS, DEFAULT_VIEW, RANGE_MODES, VIEW_PRESETS

    parser = commands.add_parser(
        "render", help="render the app's figure of a mesh, a folder or a dataset off-screen (no display needed)",
        description="Render input, predicted neutral and (with --ground-truth) the ground truth side by side, the "
                    "prediction coloured by its per-vertex error in mm with a colour bar, into a PNG, off-screen. "
                    "For a folder or dataset, --out is a folder: one figure per mesh in the input's layout (a "
                    "dataset's pairs give the ground truth), predicted in batches; figures that exist are kept "
                    "unless --overwrite.",
    )
    parser.add_argument("input", type=Path,
                        help="an expressive mesh registered to the model's template, or a folder of meshes, a dataset "
                             "folder, a morphable-model .npz or 'synth'")
    parser.add_argument("--out", required=True, type=Path,
                        help="the PNG to write, or for a folder or dataset the output folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint (default: the bundled model)")
    parser.add_argument("--ground-truth", type=Path, default=None, help="the true neutral mesh, to colour the error")
    parser.add_argument("--scale", type=_figure_scale, default=1.0,
                        help="1 to 4: each panel is 480 x 540 pixels times this (default 1)")
    parser.add_argument("--view", choices=tuple(VIEW_PRESETS), default=DEFAULT_VIEW)
    parser.add_argument("--colormap", choices=COLORMAPS, default=COLORMAPS[0])
    parser.add_argument("--range", dest="range_mode", choices=RANGE_MODES, default="percentile",
                        help="colour range: a percentile of the errors (default) or fixed (see --max)")
    parser.add_argument("--max", dest="fixed_max", type=float, default=5.0, help="top of the fixed range in mm")
    parser.add_argument("--percentile", type=float, default=99.0, help="percentile for the range (default 99)")
    parser.add_argument("--displacement", action="store_true", help="colour the input by its displacement")
    parser.add_argument("--transparent", action="store_true", help="transparent background")
    parser.add_argument("--overwrite", action="store_true",
                        help="folder or dataset: draw again the figures that exist (default: keep them)")
    add_folder_input(parser, batch_size=8, workers_do="read meshes and write figures")  # batch.RENDER_BATCH_SIZE
    add_no_align(parser)
    parser.set_defaults(handler=_run_render)


def _render_style(args: argparse.Namespace):
    from facelab.render import DisplayStyle

    return DisplayStyle(colormap=args.colormap, range_mode=args.range_mode, fixed_max_mm=args.fixed_max,
                        percentile=args.percentile, displacement=args.displacement).validate()


def _run_render(args: argparse.Namespace) -> int:
    from facelab.batch import is_batch_input
    from facelab.evaluation.sample import compute_sample
    from facelab.mesh import read_mesh
    from facelab.figure import check_png, render_sample

    if is_batch_input(args.input):
        return _run_render_batch(args)
    check_png(args.out)
    style = _render_style(args)
    model = load_model(args.checkpoint, align=not args.no_align)
    mesh = model.check_mesh(read_mesh(args.input))
    truth = model.check_mesh(read_mesh(args.ground_truth)) if args.ground_truth else None
    sample = compute_sample(model, mesh.vertices, None if truth is None else truth.vertices, label=args.input.name)
    width, height = render_sample(sample, model.triangles, args.out, style=style, scale=args.scale,
                                  transparent=args.transparent, view=args.view)
    print(f"wrote {args.out} ({width} x {height} pixels)")
    return 0


def _run_render_batch(args: argparse.Namespace) -> int:
    from facelab.batch import DEFAULT_WORKERS, RENDER_BATCH_SIZE, list_meshes, render_meshes

    if args.ground_truth is not None:
        raise FacelabError("--ground-truth is for one mesh: for a dataset, its pairs give each mesh's ground truth.")
    if args.out.suffix.lower() == ".png":
        raise FacelabError(f"{args.out}: for a folder or dataset --out is the folder to write the figures into, "
                           "not a PNG.")
    style = _render_style(args)
    options = {"identities": args.identities} if args.identities else {}
    source = list_meshes(args.input, layout=args.layout, exclude=args.out, **options)
    model = load_model(args.checkpoint, align=not args.no_align)
    report = render_meshes(model, source, args.out, style=style, scale=args.scale, transparent=args.transparent,
                           view=args.view, overwrite=args.overwrite,
                           batch_size=args.batch_size or RENDER_BATCH_SIZE, workers=args.workers or DEFAULT_WORKERS)
    print(report.summary(args.input))
    return 0


# ---- facelab gui ---------------------------------------------------------------------------------
def add_gui(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "gui", help="open the desktop app",
        description="Open the desktop app: input, predicted neutral and ground-truth neutral side by side with "
                    "error heatmaps, a dataset browser, identity matches, training in the background and figure "
                    "export. By default it opens the SynthFaces test split with the bundled model.",
    )
    parser.add_argument("input", nargs="?", type=Path, default=None, help="an expressive mesh to open (optional)")
    parser.add_argument("--ground-truth", type=Path, default=None, help="the true neutral of INPUT")
    parser.add_argument("--data", default=None,
                        help="'synth' or a dataset folder or file to browse (default: synth, unless INPUT is given)")
    parser.add_argument("--identities", type=positive_int, default=None,
                        help="identities to generate for SynthFaces or a morphable-model file (default 100)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint (default: the bundled model)")
    parser.add_argument("--screenshot", type=Path, default=None,
                        help="save a PNG of the window once the first sample is shown, then quit")
    parser.set_defaults(handler=_run_gui)


def _run_gui(args: argparse.Namespace) -> int:
    from facelab.app.launch import run_gui

    if args.ground_truth and not args.input:
        raise FacelabError("--ground-truth needs an INPUT mesh: the ground truth belongs to an input.")
    for path in (args.input, args.ground_truth, args.checkpoint):
        if path is not None and not path.exists() and not path.with_name(path.name + ".json").exists():
            raise FacelabError(f"{path} does not exist.")
    if args.screenshot is not None and args.screenshot.suffix.lower() != ".png":
        raise FacelabError(f"{args.screenshot}: the screenshot is written as PNG, expected a name ending in .png.")
    data = args.data or (None if args.input else "synth")
    return run_gui(data=data, checkpoint=str(args.checkpoint) if args.checkpoint else None,
                   input_mesh=str(args.input) if args.input else None,
                   ground_truth=str(args.ground_truth) if args.ground_truth else None,
                   screenshot=str(args.screenshot) if args.screenshot else None, identities=args.identities)
