"""A trained model ready for use: network, template, normalisation and subjects, from a checkpoint.

This is what the CLI, the GUI and scripts call::

    from facelab.model import FaceLabModel
    model = FaceLabModel.bundled()                     # or FaceLabModel.load("runs/x/best")
    mesh = facelab.mesh.read_mesh("smile.ply")
    neutral = model.neutralise_mesh(mesh)              # a FaceMesh, in mm
    model.top_subjects(mesh.vertices, k=5)             # [(subject, probability), ...]
    model.top_expressions(mesh.vertices, k=3)          # [(expression, probability), ...] (mixture models)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facelab.data.dataset import Normalisation
from facelab.errors import FacelabError
from facelab.mesh.alignment import Alignment
from facelab.mesh.face_mesh import FaceMesh
from facelab.mesh.validation import check_matches_template
from facelab.training.checkpoint import Checkpoint, CheckpointError, checkpoint_exists, load_checkpoint


@dataclass(frozen=True)
class FaceAnalysis:
    """What :meth:`FaceLabModel.analyse` reads from faces: one row per face, or the row alone for one face.

    Attributes:
        neutral: predicted neutral faces (B, n, 3) in mm, in the inputs' frames.
        embedding: identity embeddings (B, d).
        expression_probabilities: (B, k) over :attr:`FaceLabModel.expressions`, or None for a
            model without the expression mixture.
    """

    neutral: np.ndarray
    embedding: np.ndarray
    expression_probabilities: np.ndarray | None


#: The model shipped in the repository, trained on the default SynthFaces split.
BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "models" / "synthfaces"


def bundled_model_path() -> Path:
    """``FACELAB_MODEL`` if set, else the model in ``models/``."""
    return Path(os.environ.get("FACELAB_MODEL", BUNDLED_MODEL))


def weights_mismatch(expected: dict[str, torch.Tensor], stored: dict[str, torch.Tensor]) -> str | None:
    """None if ``stored`` has exactly the tensors and shapes of ``expected``, else what differs, in words."""
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    reshaped = [key for key in expected if key in stored and tuple(stored[key].shape) != tuple(expected[key].shape)]
    if reshaped:
        key = reshaped[0]
        return (f"{len(reshaped)} tensor(s) of another shape, first {key}: {list(stored[key].shape)} stored, "
                f"{list(expected[key].shape)} expected")
    if missing:
        return f"{len(missing)} tensor(s) missing, first {missing[0]}"
    if extra:
        return f"{len(extra)} tensor(s) it has no place for, first {extra[0]}"
    return None


class FaceLabModel:
    """Inference with a trained network; inputs and outputs in millimetres.

    Every face is first brought into the template's frame by the checkpoint's
    :class:`~facelab.mesh.alignment.Alignment` (a similarity fit on a stable region) and every
    predicted face is mapped back into its input's frame, so a face shifted, turned or scaled
    gives the same prediction shifted, turned or scaled. ``align``: None follows the
    checkpoint; False feeds faces to the network as they are (a model saved before alignment,
    or a comparison); True aligns even a checkpoint that records none (on all vertices).
    """

    def __init__(self, checkpoint: Checkpoint, source: Path | None = None, device: str = "cpu",
                 align: bool | None = None) -> None:
        from facelab.nn import NetworkConfig, NeutralisationNetwork

        self.source = source
        self.meta = checkpoint.meta
        self.triangles = np.asarray(checkpoint.triangles, dtype=np.int64)
        self.template = FaceMesh(checkpoint.template, self.triangles, name="template")
        self.normalisation = Normalisation(checkpoint.norm_mean, checkpoint.norm_std)
        self.subjects: list[str] = list(checkpoint.meta.get("subjects", []))
        shown = source or "the checkpoint"
        try:
            config = NetworkConfig.from_dict(checkpoint.meta["network"])
            self.network = NeutralisationNetwork(config, self.triangles, template_vertices=checkpoint.template)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"{shown} describes a network this facelab cannot build ({str(error).splitlines()[0]})."
            ) from None
        mismatch = weights_mismatch(self.network.state_dict(), checkpoint.model_state)
        if mismatch:
            raise CheckpointError(f"{shown}: the stored weights do not fit the network its JSON describes ({mismatch}).")
        self.network.load_state_dict(checkpoint.model_state)
        self.alignment = Alignment.from_dict(checkpoint.meta.get("alignment"), checkpoint.alignment_tensors).check(self.n_vertices)
        if align is False:
            self.alignment = Alignment("none")
        elif align and not self.alignment.enabled:
            self.alignment = Alignment("similarity")
        self.device = torch.device(device)
        self.network.to(self.device).eval()
        self._mean = torch.from_numpy(self.normalisation.mean).to(self.device)
        self._std = torch.from_numpy(self.normalisation.std).to(self.device)
        self._template = torch.from_numpy(np.array(self.template.vertices, dtype=np.float32)).to(self.device)  # a writable copy

    # ---- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu", align: bool | None = None) -> FaceLabModel:
        """Load a checkpoint (``NAME``, ``NAME.json`` or ``NAME.safetensors``) or a run folder (its ``best``)."""
        path = Path(path)
        if path.is_dir():
            for name in ("best", "last"):
                if checkpoint_exists(path / name):
                    path = path / name
                    break
            else:
                raise CheckpointError(f"{path} is a folder without a checkpoint: expected best.json/last.json from 'facelab train'.")
        return cls(load_checkpoint(path, with_optimizers=False), source=path, device=device, align=align)

    @classmethod
    def bundled(cls, device: str = "cpu", align: bool | None = None) -> FaceLabModel:
        path = bundled_model_path()
        if not checkpoint_exists(path):
            raise FacelabError(f"the bundled model is missing ({path}.json): pass --checkpoint, or restore models/ from git.")
        return cls.load(path, device=device, align=align)

    # ---- properties ------------------------------------------------------------------------
    @property
    def n_vertices(self) -> int:
        return self.template.n_vertices

    @property
    def variant(self) -> str:
        return self.network.config.variant

    @property
    def has_recognizer(self) -> bool:
        return self.network.recognizer is not None

    @property
    def expressions(self) -> tuple[str, ...]:
        """The expressions the model tells apart (its expression mixture's, ``neutral`` and
        ``blend`` included when it learned them); empty for a model without the mixture."""
        return tuple(self.network.config.fusion_expressions or ())

    @property
    def training_subjects(self) -> set[str]:
        """Every subject the model learned from or chose its checkpoint on (fit and validation):
        never to be scored or labelled as unseen."""
        split = self.meta.get("split") or {}
        return set(self.subjects) | set(split.get("train", ())) | set(split.get("validation", ()))

    def check_mesh(self, mesh: FaceMesh) -> FaceMesh:
        """Raise a TopologyMismatchError unless ``mesh`` is registered to this model's template."""
        return check_matches_template(mesh, self.triangles, self.n_vertices)

    # ---- inference -------------------------------------------------------------------------
    def _batches(self, vertices: np.ndarray, batch_size: int = 64):
        """(normalised faces in the template's frame, their :class:`SimilarityTransform` or None)."""
        vertices = np.asarray(vertices, dtype=np.float32)
        if vertices.ndim == 2:
            vertices = vertices[None]
        if vertices.shape[1:] != (self.n_vertices, 3):
            raise FacelabError(f"expected vertices shaped (n, {self.n_vertices}, 3), got {vertices.shape}.")
        for start in range(0, len(vertices), batch_size):
            # a copy: slices of a read-only memory map cannot back a torch tensor
            chunk = torch.from_numpy(np.array(vertices[start:start + batch_size], dtype=np.float32)).to(self.device)
            transform = self.alignment.fit(chunk, self._template)
            if transform is not None:
                chunk = transform.apply(chunk)
            yield (chunk - self._mean) / self._std, transform

    def _faces_in_input_frame(self, faces: torch.Tensor, transform) -> torch.Tensor:
        """Normalised faces in the template's frame -> mm in the frame of the faces they came from."""
        faces = faces * self._std + self._mean
        return faces if transform is None else transform.invert(faces)

    @torch.no_grad()
    def _per_face(self, method, vertices: np.ndarray) -> np.ndarray:
        """``method(x, to_input_frame)`` (normalised aligned faces -> per-face rows; the callable
        maps its predicted faces back to millimetres in the input's frame) over faces in mm, in
        batches: (B, n, 3) -> (B, ...); one face (n, 3) -> its row alone. A ``method`` that
        returns a tuple of such tensors (several results of one pass) gives a tuple of arrays."""
        outputs = [method(x, lambda faces, t=transform: self._faces_in_input_frame(faces, t))
                   for x, transform in self._batches(vertices)]
        several = isinstance(outputs[0], tuple)
        parts = zip(*outputs) if several else [outputs]
        results = [np.concatenate([t.cpu().numpy() for t in part]) for part in parts]
        if np.ndim(vertices) == 2:
            results = [result[0] for result in results]
        return tuple(results) if several else results[0]

    def neutralise(self, vertices: np.ndarray) -> np.ndarray:
        """Predicted neutral vertices in mm: (n, 3) -> (n, 3), or (B, n, 3) -> (B, n, 3)."""
        return self._per_face(lambda x, back: back(self.network.neutralise(x)[0]), vertices)

    def encode(self, vertices: np.ndarray) -> np.ndarray:
        """Latent codes Enc(F) of faces in mm (aligned first): (B, n, 3) -> (B, latent); (n, 3) -> (latent,)."""
        return self._per_face(lambda x, back: self.network.encode(x), vertices)

    @torch.no_grad()
    def translate(self, codes: np.ndarray) -> np.ndarray:
        """Expressive codes -> generated neutral codes G(z_e) (the codes themselves for ``gca``)."""
        z = torch.as_tensor(np.asarray(codes, dtype=np.float32), device=self.device)
        return self.network.translate(z).cpu().numpy()

    @torch.no_grad()
    def decode(self, codes: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Faces in mm Dec(z) from latent codes, in the template's frame (a code carries no pose):
        (B, latent) -> (B, n, 3); (latent,) -> (n, 3)."""
        codes = np.asarray(codes, dtype=np.float32)
        single = codes.ndim == 1
        codes = np.atleast_2d(codes)
        out = [(self.network.decode(torch.from_numpy(codes[start:start + batch_size]).to(self.device)) * self._std
                + self._mean).cpu().numpy() for start in range(0, len(codes), batch_size)]
        result = np.concatenate(out)
        return result[0] if single else result

    @torch.no_grad()
    def posed_like(self, faces: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """``faces`` in mm moved into the pose of ``inputs``, one input per face: each face aligned
        to the template as an input is, then moved by the inverse of its input's alignment (so a
        subject's neutral face can be set beside an input the model re-posed). The faces as given
        for a model that aligns nothing. (n, 3) with (n, 3), or (B, n, 3) with (B, n, 3)."""
        shape = np.shape(faces)
        if shape != np.shape(inputs) or shape[-2:] != (self.n_vertices, 3):
            raise FacelabError(f"expected faces and inputs of the same shape, (n, {self.n_vertices}, 3), "
                               f"got {shape} and {np.shape(inputs)}.")
        face, posed_input = (torch.from_numpy(np.array(x, dtype=np.float32).reshape(-1, self.n_vertices, 3))
                             .to(self.device) for x in (faces, inputs))
        to_template = self.alignment.fit(face, self._template)
        if to_template is None:
            return np.array(faces, dtype=np.float32)
        posed = self.alignment.fit(posed_input, self._template).invert(to_template.apply(face))
        return posed.cpu().numpy().reshape(shape)

    def neutralise_mesh(self, mesh: FaceMesh) -> FaceMesh:
        self.check_mesh(mesh)
        return mesh.with_vertices(self.neutralise(mesh.vertices), name=f"{mesh.name} (neutralised)")

    def neutralise_and_embed(self, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`neutralise` and :meth:`identity_embedding` of the same faces from one pass
        (:meth:`analyse` without the expression reading): (n, 3) -> ((n, 3), (d,)), or
        (B, n, 3) -> ((B, n, 3), (B, d))."""
        analysis = self.analyse(vertices)
        return analysis.neutral, analysis.embedding

    def analyse(self, vertices: np.ndarray) -> FaceAnalysis:
        """The neutral face, the identity embedding and the expression reading of the same faces,
        from one alignment and one pass of the network (the reading is a small product of the same
        aligned input): (n, 3) or (B, n, 3), each field one row or a batch of rows (see
        :class:`FaceAnalysis`)."""
        reads = bool(self.expressions)

        def all_three(x, back):
            faces, z = self.network.neutralise(x)
            embedding = self.network.embedding_of_code(z)
            if not reads:
                return back(faces), embedding
            return back(faces), embedding, self.network.fusion.expression_probabilities(x)

        results = self._per_face(all_three, vertices)
        return FaceAnalysis(*results) if reads else FaceAnalysis(*results, None)

    def expression_probabilities(self, vertices: np.ndarray) -> np.ndarray:
        """How likely each of :attr:`expressions` is for each face (its mixture's router): (n, 3) ->
        (k,), (B, n, 3) -> (B, k). A model without the expression mixture reads none: an error."""
        if not self.expressions:
            raise FacelabError(f"this {self.variant} model reads no expressions: only an identity-preserving model "
                               "with the expression mixture (--fusion-mixture) does.")
        return self._per_face(lambda x, back: self.network.fusion.expression_probabilities(x), vertices)

    def top_expressions(self, vertices: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        """The k most likely expressions of one face [(expression, probability)]; empty for a model
        without the expression mixture."""
        if not self.expressions:
            return []
        return self.top_expressions_of_reading(self.expression_probabilities(vertices), k)

    def top_expressions_of_reading(self, probabilities: np.ndarray | None, k: int = 3) -> list[tuple[str, float]]:
        """:meth:`top_expressions` from one face's reading (:meth:`expression_probabilities`, or
        :meth:`analyse`'s), for a caller that has it and should not run the network again; empty
        for no reading (None: a model without the expression mixture)."""
        if probabilities is None:
            return []
        probabilities = np.asarray(probabilities)
        order = np.argsort(-probabilities)[:k]
        return [(self.expressions[i], float(probabilities[i])) for i in order]

    def identity_embedding(self, vertices: np.ndarray) -> np.ndarray:
        """The identity representation (paper 4.2): (B, n, 3) -> (B, d); (n, 3) -> (d,)."""
        return self._per_face(lambda x, back: self.network.identity_embedding(x), vertices)

    def top_subjects(self, vertices: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The k most probable training subjects for one face (softmax of the recognizer).

        Empty for variants without a recognizer (``gca``, ``no-id``).
        """
        if not self.has_recognizer or not self.subjects:
            return []
        return self.top_subjects_of_embedding(self.identity_embedding(vertices), k)

    def top_subjects_of_embedding(self, embedding: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """:meth:`top_subjects` from one face's :meth:`identity_embedding` (R's logits), for a
        caller that keeps the embedding too and should not run the network twice."""
        if not self.has_recognizer or not self.subjects:
            return []
        logits = torch.from_numpy(np.asarray(embedding, dtype=np.float32))
        probabilities = torch.softmax(logits, dim=-1).numpy()
        order = np.argsort(-probabilities)[:k]
        return [(self.subjects[i], float(probabilities[i])) for i in order]
