"""Datasets: the built-in SynthFaces, real dataset layouts, pairs, splits and statistics."""

from facelab.data.dataset import NEUTRAL, DatasetSplit, FaceDataset, MeshRecord, Normalisation, Pair
from facelab.data.layouts import detect_layout, load_dataset

__all__ = [
    "NEUTRAL",
    "DatasetSplit",
    "FaceDataset",
    "MeshRecord",
    "Normalisation",
    "Pair",
    "detect_layout",
    "load_dataset",
]
