"""Face meshes: the in-memory type, reading and writing, validation, and template topology."""

from facelab.mesh.face_mesh import FaceMesh
from facelab.mesh.io import MESH_SUFFIXES, read_mesh, read_ply_vertex_property, write_mesh
from facelab.mesh.validation import check_matches_template, triangles_hash, validate_mesh

_TOPOLOGY = ("combinatorial_laplacian", "normalized_laplacian", "scaled_laplacian", "vertex_adjacency")


def __getattr__(name: str):
    # The topology brings scipy (a fifth of a second): it is imported when first asked for, so that
    # reading meshes (the app's first frames, the batch commands' readers) does without it.
    if name in _TOPOLOGY:
        from facelab.mesh import topology

        return getattr(topology, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "FaceMesh",
    "MESH_SUFFIXES",
    "check_matches_template",
    "combinatorial_laplacian",
    "normalized_laplacian",
    "read_mesh",
    "read_ply_vertex_property",
    "scaled_laplacian",
    "triangles_hash",
    "validate_mesh",
    "vertex_adjacency",
    "write_mesh",
]
