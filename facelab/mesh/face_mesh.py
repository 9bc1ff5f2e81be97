"""The in-memory face mesh."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class FaceMesh:
    """A triangle mesh of a face, registered to a template.

    Attributes:
        vertices: (n, 3) float32, millimetres. The vertex *order* carries meaning: vertex i of
            every mesh registered to one template is the same anatomical point.
        triangles: (m, 3) int64 indices into ``vertices``.
        name: where the mesh came from (a file name or a dataset label), for messages.

    The constructor only fixes dtypes and shapes; :func:`facelab.mesh.validate_mesh` checks the
    contents (finite coordinates, valid indices).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    name: str = field(default="mesh")

    def __post_init__(self) -> None:
        vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        triangles = np.ascontiguousarray(self.triangles, dtype=np.int64)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must be shaped (n, 3), got {vertices.shape}")
        if triangles.ndim != 2 or triangles.shape[1] != 3:
            if triangles.size == 0:
                triangles = triangles.reshape(0, 3)
            else:
                raise ValueError(f"triangles must be shaped (m, 3), got {triangles.shape}")
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "triangles", triangles)

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_triangles(self) -> int:
        return int(self.triangles.shape[0])

    def with_vertices(self, vertices: np.ndarray, name: str | None = None) -> FaceMesh:
        """The same topology with other vertex positions (e.g. a prediction)."""
        vertices = np.asarray(vertices, dtype=np.float32)
        if vertices.shape != self.vertices.shape:
            raise ValueError(f"expected vertices shaped {self.vertices.shape}, got {vertices.shape}")
        return FaceMesh(vertices, self.triangles, self.name if name is None else name)

    def __repr__(self) -> str:
        return f"FaceMesh({self.name!r}, {self.n_vertices} vertices, {self.n_triangles} triangles)"
