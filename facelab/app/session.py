"""What the app has open: a model, a dataset with its split, and the sample on show. Qt-free.

The session only calls the core: ``FaceDataset`` for records, pairs and the split,
``FaceLabModel`` for predictions and embeddings (:func:`compute_sample` for meshes from files;
dataset samples in batches, :func:`predict_entries`), the evaluation metrics for errors and
similarities. The widgets ask it for samples and render them. The model's answer for each listed
dataset sample is kept (:class:`Prediction`, its neutral and embedding only): the app predicts
the list in the background, so a click anywhere shows a known prediction.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelab.app.identity import Gallery, Match, TrueRank
from facelab.evaluation.metrics import per_vertex_error
from facelab.evaluation.sample import Sample, compute_sample
from facelab.data.dataset import DatasetSplit
from facelab.errors import FacelabError, TopologyMismatchError
from facelab.mesh.face_mesh import FaceMesh
from facelab.mesh.validation import check_matches_template, triangles_hash

TRAIN, TEST = "train", "test"
CACHE_SIZE = 128
#: An alignment beyond these re-posed the input: registered SynthFaces faces fit their template
#: within 2.5 degrees, 5 mm and 11 % of its size (their identities differ, their poses do not).
REPOSE_DEGREES, REPOSE_MM, REPOSE_SCALE = 5.0, 10.0, 0.15


@dataclass(frozen=True)
class Entry:
    """One browsable sample of a dataset: an expressive mesh and its ground-truth neutral."""

    index: int               # the expressive mesh's index in the dataset
    neutral: int | None      # its neutral's index, None when it has none
    subject: str
    expression: str          # "<group>/<expression>" when the dataset has groups (CoMA)
    part: str                # "train", "test" or "" (no split)

    @property
    def label(self) -> str:
        return f"{self.subject} / {self.expression}"


@dataclass(frozen=True)
class Reposing:
    """What a model's alignment did to an input: its similarity fit onto the template."""

    degrees: float       # the rotation's angle
    shift_mm: float      # how far the input's centroid moved
    scale: float
    mirrored: bool = False  # the input's coordinates have the other handedness

    @property
    def noticeable(self) -> bool:
        return bool(self.moves())

    def moves(self) -> list[str]:
        moves = ["mirrored (its coordinates have the other handedness)"] if self.mirrored else []
        if self.degrees >= REPOSE_DEGREES:
            moves.append(f"turned {self.degrees:.0f}\N{DEGREE SIGN}")
        if self.shift_mm >= REPOSE_MM:
            moves.append(f"moved {self.shift_mm:.0f} mm")
        if abs(self.scale - 1) >= REPOSE_SCALE:
            moves.append(f"scaled x{self.scale:.2f}")
        return moves

    @property
    def sentence(self) -> str:
        return "The model's alignment re-posed this input onto its template: " + ", ".join(self.moves()) + "."


def reposing(model, vertices: np.ndarray) -> Reposing | None:
    """The similarity fit ``model``'s alignment makes of ``vertices`` (None: it aligns nothing)."""
    return reposings(model, np.asarray(vertices)[None])[0]


def reposings(model, vertices: np.ndarray) -> list[Reposing | None]:
    """:func:`reposing` of each face of ``vertices`` (B, n, 3), in one fit."""
    alignment = getattr(model, "alignment", None)
    if alignment is None or not alignment.enabled:
        return [None] * len(vertices)
    import torch

    faces = torch.from_numpy(np.array(vertices, dtype=np.float32))
    transform = alignment.fit(faces, torch.from_numpy(np.asarray(model.template.vertices, dtype=np.float32)))
    if transform is None:
        return [None] * len(vertices)
    centroid = faces.mean(dim=1, keepdim=True)
    shift = (transform.apply(centroid) - centroid).flatten(1).norm(dim=1)
    return [Reposing(float(a), float(d), float(k), bool(m))
            for a, d, k, m in zip(transform.degrees(), shift, transform.scale, transform.mirrored())]


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one dataset face, kept while the model and dataset stay open: small
    enough to keep for every listed sample (the meshes are read from the dataset again)."""

    predicted: np.ndarray            # (n, 3) mm
    embedding: np.ndarray            # (d,)
    reposing: Reposing | None
    expression_probabilities: np.ndarray | None = None   # (k,) over model.expressions, if it reads them


def predict_entries(model, dataset, entries: list[Entry]) -> dict[int, Prediction]:
    """``model``'s :class:`Prediction` of each entry's face, in one batch, by expressive index.
    Reads only its arguments: the app calls it in a worker thread."""
    if not entries:
        return {}
    faces = np.array(dataset.vertices[[entry.index for entry in entries]], dtype=np.float32)
    analysis = model.analyse(faces)
    posed = reposings(model, faces)
    read = analysis.expression_probabilities
    return {entry.index: Prediction(np.asarray(analysis.neutral[i], dtype=np.float32),
                                    np.asarray(analysis.embedding[i]), posed[i], None if read is None else read[i])
            for i, entry in enumerate(entries)}


def entry_sample(model, dataset, entry: Entry, prediction: Prediction | None) -> Sample:
    """The sample of a dataset entry from its prediction, measured as :func:`compute_sample` measures one."""
    expressive = np.array(dataset.vertices[entry.index], dtype=np.float32)
    truth = np.array(dataset.vertices[entry.neutral], dtype=np.float32) if entry.neutral is not None else None
    sample = Sample(entry.label, expressive, truth, subject=entry.subject, part=entry.part, index=entry.index)
    if model is None or prediction is None:
        return sample
    sample.predicted = prediction.predicted
    if truth is not None:
        sample.error = per_vertex_error(sample.predicted, truth).astype(np.float32)
    sample.embedding = prediction.embedding
    sample.top5 = model.top_subjects_of_embedding(sample.embedding, k=5)
    sample.expressions = model.top_expressions_of_reading(prediction.expression_probabilities)
    return sample


def input_error(sample: Sample) -> np.ndarray | None:
    """The error of doing nothing: the per-vertex distance (mm) of the input to the true neutral."""
    return None if sample.truth is None else per_vertex_error(sample.expressive, sample.truth)


def error_readout(sample: Sample) -> str:
    """The readout's error summary (HTML): the prediction's error, and beside it the input's own
    distance to the truth, so the user sees how much the model helped."""
    stats = sample.stats
    if stats is None:
        return "no ground truth: no error" if sample.predicted is not None else ""
    mean = stats["mean_error_mm"]
    text = (f"error mean <b>{mean:.3f}</b> mm, median {stats['median_error_mm']:.3f} mm, "
            f"max {stats['max_error_mm']:.3f} mm")
    nothing = input_error(sample)
    if nothing is not None and float(np.mean(nothing)) > 0:
        before = float(np.mean(nothing))
        verdict = (f"the model leaves {100 * mean / before:.0f}% of it" if mean <= before
                   else "the prediction is farther from the truth than the input")
        text += f"; doing nothing (input to truth): mean {before:.3f} mm, {verdict}"
    return text


def input_subtitle(sample: Sample) -> str:
    """The input view's summary: its distance to the truth (the error of doing nothing)."""
    nothing = input_error(sample)
    if nothing is None:
        return ""
    return f"to truth: mean {float(np.mean(nothing)):.2f} mm, max {float(np.max(nothing)):.2f} mm"


def synth_neutral(model, subject: str) -> np.ndarray | None:
    """The neutral face of SynthFaces subject ``synth_<k>`` of the set ``model`` trained on,
    regenerated from its seed (subject k is the same however many are generated); None for a
    model trained on other data or another template."""
    data = (model.meta.get("data") or {}) if model is not None else {}
    found = re.fullmatch(r"synth_(\d+)", subject)
    if data.get("layout") != "synth" or found is None:
        return None
    from facelab.data.synth.generator import subject_params
    from facelab.data.synth.identity import identity_geometry
    from facelab.data.synth_dataset import DEFAULT_SEED

    seed = int((data.get("options") or {}).get("seed", DEFAULT_SEED))
    neutral = np.asarray(identity_geometry(subject_params(seed, int(found.group(1)))[None]).neutral[0], np.float32)
    return neutral if neutral.shape == (model.n_vertices, 3) else None


#: Layouts that sample their identities from a generator (``identities=`` sets how many).
SAMPLING_LAYOUTS = ("synth", "ict-facekit")


def sampled_identities(dataset) -> int | None:
    """How many identities ``dataset`` sampled, or None for data whose subjects are fixed."""
    if dataset is None or getattr(dataset, "layout", None) not in SAMPLING_LAYOUTS:
        return None
    return len(dataset.subjects)


def path_samples_identities(path: str | Path) -> bool:
    """True for training data that samples identities: 'synth' or a morphable-model file or folder."""
    text = str(path).strip()
    if not text:
        return False
    if text == "synth":
        return True
    from facelab.data.layouts import ict_facekit

    return ict_facekit.detect(Path(text).expanduser())


def model_name(model) -> str:
    """How a message names ``model``: the bundled model, or its checkpoint."""
    from facelab.model import bundled_model_path

    source = Path(str(model.source)) if getattr(model, "source", None) else None
    try:
        bundled = source is not None and source.resolve() == bundled_model_path().resolve()
    except (OSError, RuntimeError):
        bundled = False
    if bundled:
        return "the bundled model"
    return f"the model {source.parent.name}/{source.name}" if source is not None else "the current model"


def template_name(model) -> str:
    """The data whose template ``model`` fits: SynthFaces for a model trained on it."""
    data = model.meta.get("data") or {}
    if data.get("layout") == "synth":
        return "SynthFaces"
    return str(data.get("name") or "the data it was trained on")


def model_fits_dataset(model, dataset) -> str | None:
    """None if ``model`` can neutralise ``dataset``'s meshes, else the reason in one sentence."""
    if model is None or dataset is None:
        return None
    own = f"{model_name(model)} fits its own template only ({template_name(model)})"
    if dataset.n_vertices != model.n_vertices:
        return (f"{own}: it expects {model.n_vertices} vertices in that template's order and {dataset.name} "
                f"has {dataset.n_vertices}.")
    expected = model.meta.get("template_hash")
    if expected and expected != dataset.topology_hash:
        return f"{own}: {dataset.name} has as many vertices as that template but other triangles."
    return None


def mesh_misfit_sentence(model, mesh: FaceMesh, error: TopologyMismatchError) -> str:
    """Why ``mesh`` cannot go through ``model`` (``error``, the check's own detail) and what to do:
    a model of the mesh's template, trained on a dataset of such meshes or opened from a checkpoint."""
    detail = str(error).removeprefix(f"{mesh.name}: ").split("; the mesh is not registered")[0].rstrip(".")
    return (f"{mesh.name} is not registered to the template {model_name(model)} fits ({template_name(model)}): "
            f"{detail}. To neutralise meshes of its template, open a checkpoint trained on them (File > Open "
            "checkpoint) or open a dataset of them and train a model on it (Training panel).")


def train_on_it_question(reason: str, dataset) -> str:
    """The question asked when ``dataset`` does not fit the model (``reason``): a model of its own
    template is trained on it, as a new network (fine-tuning cannot change the template)."""
    return (f"{reason[0].upper()}{reason[1:]}\n\nTo neutralise {dataset.name}, train a model on it. Open it "
            "without predictions (the current model is closed) and set up the training panel to train a new "
            "network on it?")


class Session:
    def __init__(self) -> None:
        self.model = None
        self.dataset = None
        self.split = None
        self.entries: list[Entry] = []
        self._cache: OrderedDict[tuple, Sample] = OrderedDict()
        self._predictions: dict[int, Prediction] = {}    # by expressive index, for this model and dataset
        self._galleries: dict[str, Gallery] = {}
        self._reposed: tuple[Sample, Reposing | None] | None = None    # the last file sample's
        self._model_fits = True

    # ---- model and data ----------------------------------------------------------------------
    def set_model(self, model) -> None:
        """Use ``model`` (or None); raises if it does not fit the open dataset."""
        reason = model_fits_dataset(model, self.dataset)
        if reason:
            raise TopologyMismatchError(reason)
        self.model = model
        self._forget()
        if self.dataset is not None:
            self._index_dataset()  # the split follows the model's training settings

    def set_dataset(self, dataset, keep_model: bool = True) -> None:
        """Open ``dataset``; with ``keep_model=False`` a model that does not fit it is dropped."""
        reason = model_fits_dataset(self.model, dataset)
        if reason:
            if keep_model:
                raise TopologyMismatchError(reason)
            self.model = None
        self.dataset = dataset
        self._forget()
        self._index_dataset()

    def close_dataset(self) -> None:
        self.dataset, self.split, self.entries = None, None, []
        self._forget()

    def _forget(self) -> None:
        """A new model or dataset: nothing computed for the last ones stays."""
        self._model_fits = model_fits_dataset(self.model, self.dataset) is None
        self._cache.clear()
        self._predictions.clear()
        self._galleries.clear()
        self._reposed = None

    def _index_dataset(self) -> None:
        dataset = self.dataset
        config = (self.model.meta.get("train_config", {}) if self.model is not None else {}) or {}
        self.split = None
        if len(dataset.subjects) >= 2:
            self.split = dataset.split_of(config)
            if self.model is not None:
                # A subject the model trained on is never labelled "test" (unseen), whatever the split says.
                seen = self.model.training_subjects
                self.split = DatasetSplit(
                    tuple(sorted(set(self.split.train_subjects) | (set(self.split.test_subjects) & seen))),
                    tuple(s for s in self.split.test_subjects if s not in seen), self.split.seed,
                    self.split.train_fraction)
        test = set(self.split.test_subjects) if self.split else set()
        neutral_of = {(p.expressive): p.neutral for p in dataset.pairs}
        entries = []
        for index, record in enumerate(dataset.records):
            if record.is_neutral:
                continue
            part = "" if self.split is None else TEST if record.subject in test else TRAIN
            expression = f"{record.group}/{record.expression}" if record.group else record.expression
            entries.append(Entry(index, neutral_of.get(index), record.subject, expression, part))
        self.entries = entries

    @property
    def triangles(self) -> np.ndarray | None:
        if self.model is not None:
            return self.model.triangles
        return self.dataset.triangles if self.dataset is not None else None

    def entries_of(self, part: str | None) -> list[Entry]:
        """The entries of one part of the split ("train", "test"), or all of them (None)."""
        return [e for e in self.entries if part is None or e.part == part or not e.part]

    def first_entry(self, part: str | None = TEST) -> Entry | None:
        entries = [e for e in self.entries_of(part) if e.neutral is not None] or self.entries_of(part) or self.entries
        return entries[0] if entries else None

    # ---- samples -------------------------------------------------------------------------------
    def sample(self, entry: Entry) -> Sample:
        """The sample of a dataset entry, predicted by the current model (cached)."""
        key = ("entry", entry.index, entry.neutral, id(self.model))
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        prediction = None
        if self.model is not None:
            prediction = self._predictions.get(entry.index)
            if prediction is None:
                prediction = predict_entries(self.model, self.dataset, [entry])[entry.index]
                self._predictions[entry.index] = prediction
        sample = entry_sample(self.model, self.dataset, entry, prediction)
        self._cache[key] = sample
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return sample

    def unpredicted(self, entries: list[Entry]) -> list[Entry]:
        """Those of ``entries`` whose prediction by the current model is not known yet."""
        if self.model is None:
            return []
        return [entry for entry in entries if entry.index not in self._predictions]

    def keep_predictions(self, predictions: dict[int, Prediction], model, dataset) -> bool:
        """Keep predictions made (in a worker) by ``model`` of ``dataset``, if they are still the open ones."""
        if model is not self.model or dataset is not self.dataset or model is None:
            return False
        for index, prediction in predictions.items():
            self._predictions.setdefault(index, prediction)
        return True

    def check_mesh(self, mesh: FaceMesh, against: np.ndarray | None = None) -> FaceMesh:
        """Raise a TopologyMismatchError unless ``mesh`` fits the model (else the dataset, else ``against``)."""
        if self.model is not None:
            try:
                return self.model.check_mesh(mesh)
            except TopologyMismatchError as error:
                raise TopologyMismatchError(mesh_misfit_sentence(self.model, mesh, error)) from None
        if self.dataset is not None:
            return check_matches_template(mesh, self.dataset.triangles, self.dataset.n_vertices)
        if against is not None:
            return check_matches_template(mesh, against, mesh.n_vertices)
        return mesh

    def file_sample(self, expressive: FaceMesh, truth: FaceMesh | None = None) -> Sample:
        """A sample of meshes opened from files (already checked)."""
        if truth is not None and (truth.n_vertices != expressive.n_vertices
                                  or triangles_hash(truth.triangles) != triangles_hash(expressive.triangles)):
            raise TopologyMismatchError(
                f"{truth.name}: the ground truth has {truth.n_vertices} vertices and the input "
                f"{expressive.n_vertices}; both must be registered to the same template.")
        label = expressive.name.rsplit("/", 1)[-1]
        return compute_sample(self.model, expressive.vertices, None if truth is None else truth.vertices, label=label)

    def with_truth(self, sample: Sample, truth: FaceMesh) -> Sample:
        """``sample`` measured against another ground truth."""
        return compute_sample(self.model, sample.expressive, truth.vertices, label=sample.label,
                              subject=sample.subject, part=sample.part, index=sample.index)

    # ---- identity ------------------------------------------------------------------------------
    def gallery_for(self, sample: Sample) -> Gallery | None:
        """The gallery a probe is matched against: the neutral faces of its part of the split
        (the test subjects for a test probe, as ``facelab evaluate`` does), or of every subject."""
        if self.model is None or self.dataset is None or sample.embedding is None or not self._model_fits:
            return None
        part = sample.part if sample.part in (TRAIN, TEST) and self.split is not None else "all"
        gallery = self._galleries.get(part)
        if gallery is None:
            subjects = (self.split.test_subjects if part == TEST else self.split.train_subjects if part == TRAIN
                        else self.dataset.subjects)
            gallery = Gallery(self.model, self.dataset, subjects)
            self._galleries[part] = gallery
        return gallery

    def matches(self, sample: Sample, k: int = 5) -> tuple[list[Match], TrueRank | None]:
        """The k best gallery matches of ``sample`` and where its true subject stands (if known):
        its rank is its row in the same ranked list, so a header and the table agree."""
        gallery = self.gallery_for(sample)
        if gallery is None:
            return [], None
        ranked = gallery.ranking(sample.embedding)             # one ranking for the rows and the true rank
        rank = gallery.true_rank(sample.embedding, sample.subject, ranked) if sample.subject else None
        return ranked[:k] if k else ranked, rank

    def reposing(self, sample: Sample) -> Reposing | None:
        """The current model's alignment of ``sample``'s input, when it re-posed it noticeably."""
        if self.model is None or sample.predicted is None:
            return None
        known = self._predictions.get(sample.index) if sample.index is not None else None
        if known is not None:
            result = known.reposing
        elif self._reposed is not None and self._reposed[0] is sample:
            result = self._reposed[1]
        else:
            result = reposing(self.model, sample.expressive)
            self._reposed = (sample, result)
        return result if result is not None and result.noticeable else None

    def subject_neutral(self, subject: str) -> np.ndarray | None:
        """``subject``'s neutral face: from the open dataset, else (a SynthFaces subject the model
        trained on) regenerated from its seed; None when neither has it."""
        index = self.neutral_of(subject)
        if index is not None:
            return self.mesh(index)
        return synth_neutral(self.model, subject)

    def neutral_of(self, subject: str) -> int | None:
        """The index of ``subject``'s (first) neutral face in the dataset."""
        if self.dataset is None:
            return None
        for index, record in enumerate(self.dataset.records):
            if record.subject == subject and record.is_neutral:
                return index
        return None

    def mesh(self, index: int) -> np.ndarray:
        if self.dataset is None:
            raise FacelabError("no dataset is open.")
        return np.array(self.dataset.vertices[index], dtype=np.float32)
