"""Render one SynthFaces identity, neutral and with three strong expressions, into one PNG.

Usage: python scripts/render_synthfaces.py [--out assets/synthfaces.png] [--seed 0] [--subject 0]

Off-screen (no display needed). The mouth is an opening in the registered mesh, as in CoMA;
for the picture only, a dark pocket is drawn behind it so an open mouth does not show the
background.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyvista as pv

from facelab.data.synth import generate_synthfaces

PANELS = (("neutral", "neutral"), ("mouth_open_3", "mouth open"), ("high_smile_3", "high smile"),
          ("eyebrow_3", "eyebrow raise"))
SKIN = (0.87, 0.74, 0.66)
MOUTH_INSIDE = (0.22, 0.07, 0.07)
VIEW_DIRECTION = np.array([0.42, 0.12, 0.90])  # three-quarter view from the viewer's right
WINDOW_SIZE = (1600, 500)
CAVITY_DEPTH = 8.0  # mm, how far the dark pocket reaches behind the lips


def boundary_loops(triangles: np.ndarray) -> list[np.ndarray]:
    """Vertex index loops along the mesh's boundary (edges of exactly one triangle)."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    _, inverse, counts = np.unique(np.sort(edges, axis=1), axis=0, return_inverse=True, return_counts=True)
    boundary = edges[counts[inverse.reshape(-1)] == 1]
    successor = dict(zip(boundary[:, 0].tolist(), boundary[:, 1].tolist()))
    loops = []
    while successor:
        start = next(iter(successor))
        loop, current = [start], successor.pop(start)
        while current != start:
            loop.append(current)
            current = successor.pop(current)
        loops.append(np.array(loop))
    return loops


def face_polydata(vertices: np.ndarray, triangles: np.ndarray) -> pv.PolyData:
    faces = np.hstack([np.full((len(triangles), 1), 3, dtype=np.int64), triangles]).ravel()
    return pv.PolyData(np.asarray(vertices, dtype=np.float32), faces)


def mouth_cavity(vertices: np.ndarray, mouth_loop: np.ndarray) -> pv.PolyData:
    """A dark pocket behind the lips: a wall from the lips' rim straight back, closed by a fan."""
    rim = vertices[mouth_loop].astype(np.float64)
    back = rim - [0.0, 0.0, CAVITY_DEPTH]
    bottom = back.mean(axis=0) - [0.0, 0.0, CAVITY_DEPTH]
    k = len(rim)
    ring, following = np.arange(k), (np.arange(k) + 1) % k
    wall = np.column_stack([np.full(k, 4), ring, following, k + following, k + ring])
    fan = np.column_stack([np.full(k, 3), np.full(k, 2 * k), k + following, k + ring])
    return pv.PolyData(np.vstack([rim, back, bottom]), np.concatenate([wall.ravel(), fan.ravel()]))


def add_studio_lights(plotter: pv.Plotter) -> None:
    """Key light high on the viewer's left, a softer fill from the right, a faint back light:
    relief reads better than under a single headlight."""
    for position, intensity in (((-1.0, 1.2, 1.4), 0.9), ((1.5, 0.2, 1.0), 0.4), ((0.0, 0.5, -1.0), 0.2)):
        plotter.add_light(pv.Light(position=position, focal_point=(0.0, 0.0, 0.0), intensity=intensity,
                                   light_type="camera light"))  # added to every panel's renderer


def render(out: Path, seed: int, subject: int) -> None:
    data = generate_synthfaces(identities=subject + 1, seed=seed)
    name = f"synth_{subject:03d}"
    records = {label: index for index, (who, label) in enumerate(zip(data.subjects, data.expressions)) if who == name}
    loops = boundary_loops(np.asarray(data.triangles))
    mouth_loop = min(loops, key=len)

    plotter = pv.Plotter(off_screen=True, shape=(1, len(PANELS)), window_size=WINDOW_SIZE, border=False,
                         lighting="none")
    plotter.set_background("white")
    add_studio_lights(plotter)
    focus = data.vertices[records["neutral"]].mean(axis=0) + np.array([0.0, -4.0, 0.0])
    for column, (label, title) in enumerate(PANELS):
        vertices = data.vertices[records[label]]
        plotter.subplot(0, column)
        plotter.add_mesh(face_polydata(vertices, data.triangles), color=SKIN, smooth_shading=True,
                         specular=0.25, specular_power=18, diffuse=0.85, ambient=0.12)
        plotter.add_mesh(mouth_cavity(vertices, mouth_loop), color=MOUTH_INSIDE, ambient=0.5, diffuse=0.5)
        plotter.add_text(title, position="upper_edge", font_size=13, color="black")
        direction = VIEW_DIRECTION / np.linalg.norm(VIEW_DIRECTION)
        plotter.camera.focal_point = tuple(focus)
        plotter.camera.position = tuple(focus + 430.0 * direction)
        plotter.camera.up = (0.0, 1.0, 0.0)
        plotter.camera.view_angle = 30.0
    plotter.subplot(0, 0)
    plotter.add_text(f"SynthFaces  {name}  (seed {seed})", position="lower_left", font_size=9, color="grey")
    out.parent.mkdir(parents=True, exist_ok=True)
    plotter.screenshot(str(out))
    plotter.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("assets/synthfaces.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subject", type=int, default=0)
    args = parser.parse_args()
    render(args.out, args.seed, args.subject)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
