"""A linear morphable face model (identity and expression modes) and the ICT-FaceKit importer.

The compact ``.npz`` form, all in millimetres:

==========================  ==================  =============================================
key                         shape               meaning
==========================  ==================  =============================================
``neutral``                 (n, 3) float32      the generic neutral face
``faces``                   (m, 3) int32        triangles
``identity_modes``          (k, n, 3) float32   identity deltas; weights ~ N(0, 1)
``expression_modes``        (e, n, 3) float32   expression blend-shape deltas; weights 0..1
``expression_names``        (e,) str            their names (ARKit style: ``jawOpen``...)
``units``                   () str              ``"mm"``
``narrow_face_vertices``    () int              the first vertices form the narrow face area
==========================  ==================  =============================================

A face is ``neutral + sum_i w_i identity_modes[i] + sum_j x_j expression_modes[j]``.

:func:`import_ict` builds that file from ICT-FaceKit's ``FaceXModel/`` folder (ICT-VGL/ICT-FaceKit,
MIT licence): ``generic_neutral_mesh.obj``, ``identity000.obj``... and one ``<name>.obj`` per
expression, in centimetres, on a 26,719-vertex head whose face area is vertices 0..9408 (the
narrow face area 0..6705).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facelab.atomic import atomic_path
from facelab.errors import DatasetError, MeshError

REQUIRED_KEYS = ("neutral", "faces", "identity_modes", "expression_modes", "expression_names")
UNITS = "mm"

# ICT-FaceKit's FaceXModel, per the repository README ("Face Area Details").
ICT_UNIT_SCALE = 10.0  # centimetres -> millimetres
ICT_FACE_AREA_VERTICES = 9409  # full face area: vertices 0..9408
ICT_NARROW_FACE_VERTICES = 6706  # narrow face area: vertices 0..6705
ICT_NEUTRAL_FILE = "generic_neutral_mesh.obj"
ICT_IDENTITY_FILE = "identity{:03d}.obj"
#: The 53 ARKit-style expression shapes of the ICT Face Model Light, sorted.
ICT_EXPRESSION_NAMES = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
    "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R",
    "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R",
    "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R",
    "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)

_EXPECTED = "expected an .npz with neutral, faces, identity_modes, expression_modes and expression_names in mm"


@dataclass(eq=False)
class MorphableModel:
    """A linear face model on one topology, in millimetres.

    Attributes:
        neutral: (n, 3) float32, the mean/generic neutral face.
        faces: (m, 3) int64 triangles.
        identity_modes: (k, n, 3) float32 deltas; identity weights are ~ N(0, 1).
        expression_modes: (e, n, 3) float32 deltas; expression weights lie in 0..1.
        expression_names: e names, in the order of ``expression_modes``.
        narrow_face_vertices: the first vertices that form the narrow face area (n if none).
    """

    neutral: np.ndarray
    faces: np.ndarray
    identity_modes: np.ndarray
    expression_modes: np.ndarray
    expression_names: tuple[str, ...]
    narrow_face_vertices: int

    def __post_init__(self) -> None:
        self.neutral = np.ascontiguousarray(self.neutral, dtype=np.float32)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64)
        self.identity_modes = np.ascontiguousarray(self.identity_modes, dtype=np.float32)
        self.expression_modes = np.ascontiguousarray(self.expression_modes, dtype=np.float32)
        self.expression_names = tuple(str(name) for name in self.expression_names)
        self.narrow_face_vertices = int(self.narrow_face_vertices)
        problem = self._shape_problem()
        if problem:
            raise ValueError(problem)

    def _shape_problem(self) -> str | None:
        n = self.neutral.shape[0] if self.neutral.ndim == 2 else -1
        if self.neutral.ndim != 2 or self.neutral.shape[1] != 3 or n == 0:
            return f"neutral is shaped {self.neutral.shape}, not (n, 3)"
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            return f"faces is shaped {self.faces.shape}, not (m, 3)"
        if self.faces.min() < 0 or self.faces.max() >= n:
            return f"faces refer to vertex {int(self.faces.max())} of a {n}-vertex neutral"
        for key in ("identity_modes", "expression_modes"):
            modes = getattr(self, key)
            if modes.ndim != 3 or modes.shape[1:] != (n, 3) or modes.shape[0] == 0:
                return f"{key} is shaped {modes.shape}, not (count, {n}, 3)"
        if len(self.expression_names) != len(self.expression_modes):
            return f"{len(self.expression_names)} expression names for {len(self.expression_modes)} expression modes"
        if not 0 < self.narrow_face_vertices <= n:
            return f"narrow_face_vertices is {self.narrow_face_vertices}, not within 1..{n}"
        for key in ("neutral", "identity_modes", "expression_modes"):
            if not np.isfinite(getattr(self, key)).all():
                return f"{key} holds NaN or infinite values"
        return None

    # ---- what it holds -------------------------------------------------------------------
    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def n_identity_modes(self) -> int:
        return int(self.identity_modes.shape[0])

    @property
    def n_expression_modes(self) -> int:
        return int(self.expression_modes.shape[0])

    # ---- files -----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> MorphableModel:
        """Read a compact model ``.npz`` (never unpickling anything).

        Raises:
            DatasetError: the file is missing, truncated, corrupt, not an npz, lacks a key, or
                holds arrays of inconsistent shapes.
        """
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"{path} does not exist or is not a file: {_EXPECTED}.")
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [key for key in REQUIRED_KEYS if key not in archive.files]
                if missing:
                    raise DatasetError(f"{path} lacks the key(s) {', '.join(missing)}: {_EXPECTED}.")
                arrays = {key: archive[key] for key in archive.files if key in (*REQUIRED_KEYS, "units", "narrow_face_vertices")}
        except DatasetError:
            raise
        except Exception as error:  # numpy, zipfile and zlib raise many types for damaged archives
            raise DatasetError(
                f"{path} could not be read as a morphable model ({type(error).__name__}: {error}): {_EXPECTED}."
            ) from None
        units = str(arrays["units"]) if "units" in arrays else UNITS
        if units != UNITS:
            raise DatasetError(f"{path} is in '{units}': expected a model in millimetres ('{UNITS}').")
        names = arrays["expression_names"]
        if names.dtype.kind not in "US" or names.ndim != 1:
            raise DatasetError(f"{path} stores expression_names as {names.dtype} {names.shape}: expected a list of strings.")
        for key in ("neutral", "identity_modes", "expression_modes", "faces"):
            if arrays[key].dtype.kind not in ("iu" if key == "faces" else "f"):
                raise DatasetError(f"{path} stores {key} as {arrays[key].dtype}: {_EXPECTED}.")
        n = arrays["neutral"].shape[0] if arrays["neutral"].ndim == 2 else 0
        try:
            narrow = int(arrays["narrow_face_vertices"]) if "narrow_face_vertices" in arrays else n
            return cls(arrays["neutral"], arrays["faces"], arrays["identity_modes"], arrays["expression_modes"],
                       tuple(names.astype(str)), narrow)
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{path} is not a consistent morphable model ({error}): {_EXPECTED}.") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the compact ``.npz`` (compressed) atomically; returns the path."""
        path = Path(path)
        with atomic_path(path, suffix=".npz") as tmp:  # numpy appends .npz to other names
            np.savez_compressed(
                tmp,
                neutral=self.neutral,
                faces=self.faces.astype(np.int32),
                identity_modes=self.identity_modes,
                expression_modes=self.expression_modes,
                expression_names=np.array(self.expression_names, dtype=str),
                units=np.array(UNITS),
                narrow_face_vertices=np.array(self.narrow_face_vertices, dtype=np.int64),
            )
        return path

    # ---- shapes ----------------------------------------------------------------------------
    def sample_identities(self, count: int, seed: int) -> np.ndarray:
        """Identity weights (count, k) float32 ~ N(0, 1), from ``np.random.default_rng(seed)``.

        Row i depends only on the seed, not on ``count``: more identities extend the list.
        """
        return np.random.default_rng(seed).standard_normal((count, self.n_identity_modes)).astype(np.float32)

    def shape(self, identity_weights: np.ndarray, expression_weights: np.ndarray | None = None) -> np.ndarray:
        """Vertices of faces with these weights, in mm.

        Args:
            identity_weights: (k,) or (B, k).
            expression_weights: (e,) or (B, e), or None for neutral faces.

        Returns:
            (n, 3) float32 for one face, (B, n, 3) for a batch.
        """
        identity = np.asarray(identity_weights, dtype=np.float32)
        single = identity.ndim == 1
        identity = np.atleast_2d(identity)
        if identity.shape[1] != self.n_identity_modes:
            raise ValueError(f"expected {self.n_identity_modes} identity weights, got {identity.shape[1]}")
        flat = identity @ self.identity_modes.reshape(self.n_identity_modes, -1)
        if expression_weights is not None:
            expression = np.atleast_2d(np.asarray(expression_weights, dtype=np.float32))
            if expression.shape[1] != self.n_expression_modes:
                raise ValueError(f"expected {self.n_expression_modes} expression weights, got {expression.shape[1]}")
            single = single and np.ndim(expression_weights) == 1
            flat = flat + expression @ self.expression_modes.reshape(self.n_expression_modes, -1)
        vertices = self.neutral[None] + flat.reshape(-1, self.n_vertices, 3)
        return vertices[0] if single else vertices

    def restrict(self, n_vertices: int) -> MorphableModel:
        """The model on its first ``n_vertices`` vertices, keeping triangles among them only."""
        if not 0 < n_vertices <= self.n_vertices:
            raise ValueError(f"cannot keep {n_vertices} of {self.n_vertices} vertices")
        kept = (self.faces < n_vertices).all(axis=1)
        return MorphableModel(
            self.neutral[:n_vertices], self.faces[kept], self.identity_modes[:, :n_vertices],
            self.expression_modes[:, :n_vertices], self.expression_names,
            min(self.narrow_face_vertices, n_vertices),
        )


# ---- ICT-FaceKit import -------------------------------------------------------------------------
def _read_obj_vertices(path: Path) -> np.ndarray:
    """The ``v`` lines of an OBJ as (n, 3) float64, in file order."""
    return _read_obj(path, with_triangles=False)[0]


def _read_obj(path: Path, with_triangles: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (n, 3) float64 in file order and triangles (m, 3) int64 of an OBJ.

    A plain reader rather than trimesh: ICT-FaceKit's OBJ files use several materials, and
    trimesh splits such files per material, which duplicates vertices and loses their order.
    Polygons are split as fans (a quad a b c d gives a b c and a c d); texture and normal
    indices are ignored.
    """
    vertices, triangles = [], []
    try:
        for line in path.read_bytes().splitlines():
            if line.startswith(b"v "):
                vertices.append(line.split()[1:4])
            elif with_triangles and line.startswith(b"f "):
                corners = [int(token.split(b"/")[0]) - 1 for token in line.split()[1:]]
                triangles += [(corners[0], corners[i], corners[i + 1]) for i in range(1, len(corners) - 1)]
        points = np.array(vertices, dtype=np.float64)
        faces = np.array(triangles, dtype=np.int64).reshape(-1, 3)
    except (OSError, ValueError) as error:
        raise MeshError(f"{path} could not be read as OBJ ({error}): expected 'v x y z' and 'f a b c ...' lines.") from None
    if points.ndim != 2 or points.shape[1:] != (3,) or not np.isfinite(points).all():
        raise MeshError(f"{path} has malformed or non-finite vertices: expected 'v x y z' lines with finite numbers.")
    if faces.size and (faces.min() < 0 or faces.max() >= len(points)):
        raise MeshError(f"{path} has faces that refer to missing vertices: expected 1-based indices up to {len(points)}.")
    return points, faces


def import_ict(
    facexmodel_dir: str | os.PathLike,
    out_npz: str | os.PathLike,
    *,
    face_vertices: int = ICT_FACE_AREA_VERTICES,
    narrow_face_vertices: int = ICT_NARROW_FACE_VERTICES,
    expression_names: tuple[str, ...] = ICT_EXPRESSION_NAMES,
    unit_scale: float = ICT_UNIT_SCALE,
    progress: bool = True,
) -> Path:
    """Convert ICT-FaceKit's ``FaceXModel/`` folder into the compact model ``.npz``.

    Reads ``generic_neutral_mesh.obj``, ``identity000.obj``, ``identity001.obj``... (as many as
    are numbered consecutively: 100 in the light model) and ``<name>.obj`` per expression name;
    keeps the face area (vertices ``0 .. face_vertices - 1`` and the triangles among them, quads
    split in two); converts cm to mm; stores the modes as deltas from the neutral. The output is
    written atomically.

    Raises:
        DatasetError: the folder, the neutral, an expression file or every identity file is
            missing, or a file is unreadable or has another vertex count than the neutral.
    """
    folder = Path(facexmodel_dir)
    neutral_path = folder / ICT_NEUTRAL_FILE
    if not neutral_path.is_file():
        raise DatasetError(f"{folder} has no {ICT_NEUTRAL_FILE}: expected ICT-FaceKit's FaceXModel folder.")
    missing = [name for name in expression_names if not (folder / f"{name}.obj").is_file()]
    if missing:
        raise DatasetError(
            f"{folder} lacks {len(missing)} expression file(s) (first: {missing[0]}.obj): "
            f"expected the {len(expression_names)} ICT-FaceKit expression shapes."
        )
    identity_paths = []
    while (folder / ICT_IDENTITY_FILE.format(len(identity_paths))).is_file():
        identity_paths.append(folder / ICT_IDENTITY_FILE.format(len(identity_paths)))
    if not identity_paths:
        raise DatasetError(f"{folder} has no {ICT_IDENTITY_FILE.format(0)}: expected ICT-FaceKit's identity shapes.")

    try:
        neutral, head_triangles = _read_obj(neutral_path)
    except MeshError as error:
        raise DatasetError(str(error)) from None
    if len(neutral) < face_vertices:
        raise DatasetError(f"{neutral_path} has {len(neutral)} vertices: expected at least the {face_vertices} of the face area.")

    def deltas(paths: list[Path], what: str) -> np.ndarray:
        modes = np.empty((len(paths), face_vertices, 3), dtype=np.float32)
        for index, path in enumerate(tqdm(paths, desc=f"Reading ICT-FaceKit {what}", unit="mesh", disable=not progress)):
            try:
                vertices = _read_obj_vertices(path)
            except MeshError as error:
                raise DatasetError(str(error)) from None
            if len(vertices) != len(neutral):
                raise DatasetError(f"{path} has {len(vertices)} vertices: expected {len(neutral)}, as in {ICT_NEUTRAL_FILE}.")
            modes[index] = (vertices[:face_vertices] - neutral[:face_vertices]) * unit_scale
        return modes

    among_face = (head_triangles < face_vertices).all(axis=1)
    identity_modes = deltas(identity_paths, "identities")
    expression_modes = deltas([folder / f"{name}.obj" for name in expression_names], "expressions")
    try:
        model = MorphableModel(
            neutral=neutral[:face_vertices] * unit_scale,
            faces=head_triangles[among_face],
            identity_modes=identity_modes,
            expression_modes=expression_modes,
            expression_names=tuple(expression_names),
            narrow_face_vertices=min(narrow_face_vertices, face_vertices),
        )
    except ValueError as error:
        raise DatasetError(
            f"{folder} does not give a valid face model ({error}): expected ICT-FaceKit's FaceXModel folder."
        ) from None
    return model.save(out_npz)
