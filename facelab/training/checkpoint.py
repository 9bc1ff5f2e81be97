"""Checkpoints: tensors in safetensors, everything else in JSON, never pickles.

A checkpoint ``NAME`` is two files: ``NAME.safetensors`` (model weights, the template's
triangles and mean shape, the normalisation statistics, optimiser tensors) and ``NAME.json``
(format version, network config (the architecture: variant, Laplacian, downsampling), training
config, epoch and step, template hash, subject list, metrics, optimiser scalars, and the SHA-256
of the tensor file). Both are written atomically, tensors first: the JSON is the commit marker,
and its hash detects a pair that does not belong together.

Pass either file's path, or the path without extension, to :func:`load_checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from facelab.atomic import atomic_path
from facelab.training.checkpoint_schema import meta_problem
from facelab.errors import FacelabError

FORMAT = "facelab-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(FacelabError):
    """A checkpoint is missing, corrupt, or not a facelab checkpoint."""


@dataclass
class Checkpoint:
    """What a checkpoint holds, in memory.

    Attributes:
        model_state: the network's ``state_dict`` (tensors).
        triangles: (m, 3) int64, the template topology the model was trained on.
        template: (n, 3) float32 mm, the template's mean neutral shape (for display and checks).
        norm_mean, norm_std: (n, 3) float32 mm, the training split's statistics.
        meta: JSON-able: ``network`` (NetworkConfig dict), ``epoch``, ``position``,
            ``template_hash``, ``subjects``, ``metrics``, ``train_config`` ...
        optimizer_states: name -> ``optimizer.state_dict()`` (may be empty: a bundled model).
        alignment_tensors: the learned part of a ``canonical`` alignment (empty for the others;
            ``meta["alignment"]`` describes it).
    """

    model_state: dict[str, torch.Tensor]
    triangles: np.ndarray
    template: np.ndarray
    norm_mean: np.ndarray
    norm_std: np.ndarray
    meta: dict[str, Any]
    optimizer_states: dict[str, dict] = field(default_factory=dict)
    alignment_tensors: dict[str, torch.Tensor] = field(default_factory=dict)


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def checkpoint_exists(path: str | os.PathLike) -> bool:
    tensors, meta = _paths(path)
    return tensors.is_file() and meta.is_file()


def _split_optimizer(name: str, state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        entry = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{name}.{index}.{key}"] = value.detach().cpu().contiguous()
                entry[key] = None
            else:
                entry[key] = value
        scalars["state"][str(index)] = entry
    return tensors, scalars


def _join_optimizer(name: str, scalars: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state = {}
    for index, values in scalars["state"].items():
        state[int(index)] = {
            key: tensors[f"optim.{name}.{index}.{key}"] if value is None else value for key, value in values.items()
        }
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write ``path.safetensors`` and ``path.json`` atomically; returns the JSON path."""
    tensors_path, meta_path = _paths(path)
    tensors = {f"model.{key}": value.detach().cpu().contiguous() for key, value in checkpoint.model_state.items()}
    tensors["template.triangles"] = torch.from_numpy(np.ascontiguousarray(checkpoint.triangles, dtype=np.int64))
    tensors["template.vertices"] = torch.from_numpy(np.ascontiguousarray(checkpoint.template, dtype=np.float32))
    tensors["norm.mean"] = torch.from_numpy(np.ascontiguousarray(checkpoint.norm_mean, dtype=np.float32))
    tensors["norm.std"] = torch.from_numpy(np.ascontiguousarray(checkpoint.norm_std, dtype=np.float32))
    tensors.update({f"alignment.{key}": value.detach().cpu().contiguous()
                    for key, value in checkpoint.alignment_tensors.items()})
    optimizers = {}
    for name, state in checkpoint.optimizer_states.items():
        optimizer_tensors, optimizer_scalars = _split_optimizer(name, state)
        tensors.update(optimizer_tensors)
        optimizers[name] = optimizer_scalars
    # Serialised in memory and written by Python, so that a full disk is an OSError (which
    # atomic_path turns into one sentence) rather than safetensors' own I/O error; both halves
    # are written before either is renamed, so a failed write leaves the previous pair intact.
    data = save(tensors)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, **checkpoint.meta,
            "optimizers": optimizers, "tensors_sha256": hashlib.sha256(data).hexdigest()}
    text = json.dumps(meta, indent=1, default=_json_default)
    with atomic_path(tensors_path) as tensors_tmp, atomic_path(meta_path) as meta_tmp:
        tensors_tmp.write_bytes(data)
        meta_tmp.write_text(text, encoding="utf-8")
    return meta_path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or infinity in ``tensor``: its least and greatest values are finite (NaN propagates
    through both), two reductions without the boolean copy ``isfinite`` makes (5x faster)."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    low, high = torch.aminmax(tensor)
    return bool(torch.isfinite(low)) and bool(torch.isfinite(high))


def load_checkpoint(path: str | os.PathLike, with_optimizers: bool = True) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: a file is missing, truncated or corrupt, the pair does not belong
            together, or it is not a facelab checkpoint.
    """
    tensors_path, meta_path = _paths(path)
    shown = Path(path)
    for required in (meta_path, tensors_path):
        if not required.is_file():
            raise CheckpointError(
                f"{shown} is not a complete facelab checkpoint: {required.name} is missing "
                "(expected NAME.safetensors and NAME.json side by side)."
            )
    try:
        meta = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{meta_path} is corrupt: expected the JSON half of a facelab checkpoint ({error}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} is not a facelab checkpoint: its JSON has no \"format\": \"{FORMAT}\" entry.")
    problem = meta_problem(meta)
    if problem:
        raise CheckpointError(f"{meta_path} {problem}: the JSON half of this checkpoint was changed or damaged.")
    if meta["version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path} was written by a newer facelab (checkpoint format {meta['version']}); "
            f"this version reads format {FORMAT_VERSION} and older."
        )
    data = tensors_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("tensors_sha256"):
        raise CheckpointError(
            f"{tensors_path} is corrupt or does not belong to {meta_path.name}: its checksum differs "
            "from the one recorded when the checkpoint was saved."
        )
    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{tensors_path} is corrupt: expected a safetensors file ({error}).") from None
    not_finite = next((key for key, value in tensors.items() if not _all_finite(value)), None)
    if not_finite is not None:
        raise CheckpointError(
            f"{tensors_path} holds NaN or infinite values (first in the tensor {not_finite}): a model trained into "
            "non-finite weights cannot predict faces; use an earlier checkpoint of the run."
        )
    try:
        model_state = {key[len("model."):]: value for key, value in tensors.items() if key.startswith("model.")}
        optimizer_states = {}
        if with_optimizers:
            optimizer_states = {name: _join_optimizer(name, scalars, tensors)
                                for name, scalars in meta.get("optimizers", {}).items()}
        meta = {key: value for key, value in meta.items() if key not in ("optimizers",)}
        return Checkpoint(
            model_state=model_state,
            triangles=tensors["template.triangles"].numpy(),
            template=tensors["template.vertices"].numpy(),
            norm_mean=tensors["norm.mean"].numpy(),
            norm_std=tensors["norm.std"].numpy(),
            meta=meta,
            optimizer_states=optimizer_states,
            alignment_tensors={key[len("alignment."):]: value for key, value in tensors.items()
                               if key.startswith("alignment.")},
        )
    except KeyError as error:
        raise CheckpointError(f"{tensors_path} lacks the tensor {error} that every facelab checkpoint has.") from None
