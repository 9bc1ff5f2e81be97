"""Face meshes: the in-memory type, reading and writing, validation, and template topology."""

from facelab.mesh.face_mesh import FaceMesh
from facelab.mesh.io import MESH_SUFFIXES, read_mesh, read_ply_vertex_property, write_mesh
from facelab.mesh.topology import (
    combinatorial_laplacian,
    normalized_laplacian,
    scaled_laplacian,
    vertex_adjacency,
)
from facelab.mesh.validation import check_matches_template, triangles_hash, validate_mesh

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
