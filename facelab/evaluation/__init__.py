"""Evaluation: per-vertex errors, rank-k identification, baselines and reports."""

from facelab.evaluation.metrics import cosine_similarity, error_summary, per_vertex_error, rank_k_identification

__all__ = ["cosine_similarity", "error_summary", "per_vertex_error", "rank_k_identification"]
