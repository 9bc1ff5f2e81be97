"""What the app shows, and the decisions about it. Qt-free.

The state holds what is on show: the sample (a dataset entry, or meshes opened from files with
their triangles), a gallery or training subject's neutral chosen for the right view, the
training preview, the loading note, and the open dataset's source and options. It decides what
applies to them: the figure panels and their notes, the readout, the identity panel's content,
and rolling a refused model back. It is the app's model beside its Qt views (as napari's
``components`` beside ``_qt``): the window calls its methods and re-renders when its events
fire, and tests drive it without Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Callable

import numpy as np

from facelab.app.export import export_predicted_mesh, export_statistics
from facelab.app.identity import Match, TrueRank
from facelab.app.session import Entry, Session, error_readout, input_subtitle
from facelab.errors import FacelabError
from facelab.evaluation.metrics import UNCERTAIN_BELOW
from facelab.evaluation.sample import Sample
from facelab.mesh.validation import check_matches_template
from facelab.render import DisplayStyle, Panel, figure_panels

NO_SAMPLE_NOTE = "No sample.\nOpen a dataset or a mesh (File menu),\nor drop one here."
NO_TRUTH_NOTE = "No ground truth.\nFile > Open ground-truth neutral,\nor drop a mesh here."
NO_MODEL_NOTE = "No model loaded.\nFile > Open checkpoint, or train one\n(Training panel)."
NO_MODEL_IDENTITY = "Open a model to see identities."


class Event:
    """One kind of change: its listeners are called, in the order they connected, with the
    event's arguments."""

    def __init__(self) -> None:
        self._listeners: list[Callable] = []

    def connect(self, listener: Callable) -> Callable:
        self._listeners.append(listener)
        return listener

    def disconnect(self, listener: Callable) -> None:
        self._listeners.remove(listener)

    def emit(self, *args) -> None:
        for listener in list(self._listeners):
            listener(*args)


class StateEvents:
    """The state's events. ``sample(sample)``: a sample is (again) on show, so the views, the
    readout and the identity panel re-render; ``views()``: what the views show changed and the
    sample did not (a neutral on the right, a training preview, a loading note, nothing on show);
    ``identity()``: the identity panel's content changed (another gallery, nothing on show)."""

    def __init__(self) -> None:
        self.sample = Event()
        self.views = Event()
        self.identity = Event()


@dataclass(frozen=True)
class IdentityContent:
    """What the identity panel shows: only ``note`` when ``top5`` is None (no sample or no model)."""

    note: str
    top5: list[tuple[str, float]] | None = None
    matches: list[Match] = field(default_factory=list)
    rank: TrueRank | None = None
    subject: str | None = None
    gallery_size: int = 0
    chosen: str | None = None        # the subject whose neutral the right view shows


def model_summary(model, source_label: str | None = None) -> str:
    """The status bar's line about ``model``: where it comes from, its variant, what it trained on."""
    source = Path(str(model.source)) if model.source else None
    name = source_label or (f"{source.parent.name}/{source.name}" if source else "model")
    trained = model.meta.get("data", {}).get("name", "")
    # The recogniser's subjects are those the network learned from; the validation subjects that
    # chose its checkpoint are counted apart (evaluate's linear row is fitted on both).
    validation = len(model.meta.get("split", {}).get("validation") or ())
    subjects = f"{len(model.subjects):,} training subjects" + (f" + {validation:,} validation" if validation else "")
    return f"Model: {name} ({model.variant}, {subjects}{', ' + trained if trained else ''})"


class AppState:
    """What the app shows: its :class:`Session` (model, dataset, samples) and what is on show of it."""

    def __init__(self, session: Session | None = None) -> None:
        self.session = session or Session()
        self.events = StateEvents()
        self.sample: Sample | None = None           # the sample on show (dataset entry or files)
        self.entry: Entry | None = None             # its dataset entry, if any
        self.gallery_choice: tuple[str, np.ndarray, str] | None = None   # (subject, neutral, kind) on the right
        self.gallery_reposed = False    # that neutral moved into the pose of an input the model re-posed
        self.preview = None                         # the training preview on show
        self.file_triangles: np.ndarray | None = None   # the topology of meshes opened from files
        self.dataset_source: str | None = None
        self.dataset_options: dict = {}
        self.loading: str | None = None             # what the app is reading at start (the empty views say so)

    @property
    def model(self):
        return self.session.model

    @property
    def dataset(self):
        return self.session.dataset

    @property
    def triangles(self) -> np.ndarray | None:
        """The triangles of the meshes on show: a file's for meshes from files, else the model's or dataset's."""
        if self.entry is None and self.file_triangles is not None:
            return self.file_triangles
        return self.session.triangles

    # ---- what the training panel asks --------------------------------------------------------
    def open_dataset_context(self):
        """(dataset, source, options) of the open dataset, or None."""
        if self.session.dataset is None:
            return None
        return self.session.dataset, self.dataset_source or "synth", dict(self.dataset_options)

    def current_model(self):
        return self.session.model

    def selected_index(self) -> int | None:
        return self.entry.index if self.entry is not None else None

    # ---- models ------------------------------------------------------------------------------
    def set_model(self, model) -> None:
        """Use ``model`` (or None) and measure the meshes from files on show with it; :meth:`reshow`
        then shows them. A model that does not fit the dataset or those meshes is refused: the
        previous one is back and the ``FacelabError`` raised."""
        previous = self.session.model
        try:
            self.session.set_model(model)
            if self.sample is not None and self.entry is None:
                self._measure_file_sample()
        except FacelabError:
            self.roll_back_model(previous)
            raise
        # A chosen neutral was posed by the previous model's alignment: the right view shows the truth again.
        self.preview, self.gallery_choice = None, None
        if self.entry is not None:
            # The split follows the model's training settings: the entry on show may be in another part.
            self.entry = next((e for e in self.session.entries if e.index == self.entry.index), None)

    def roll_back_model(self, previous) -> None:
        """Use ``previous`` again after a model change failed half-way: the split is listed for it
        again and nothing computed with the refused model stays."""
        if self.session.model is not previous:
            self.session.set_model(previous)

    def _measure_file_sample(self) -> None:
        """The meshes from files on show, measured with the (new) model; raises if they do not fit it."""
        from facelab.mesh import FaceMesh

        sample = self.sample
        mesh = FaceMesh(sample.expressive, self.triangles, name=sample.label)
        self.session.check_mesh(mesh)
        truth = None if sample.truth is None else mesh.with_vertices(sample.truth)
        self.sample = self.session.file_sample(mesh, truth)

    def reshow(self) -> None:
        """Show the sample on show again, measured with the current model (after a model change)."""
        if self.entry is not None:
            self.show_entry(self.entry)
        elif self.sample is not None:
            self._show(self.sample)
        else:
            self.show_nothing()

    # ---- datasets ----------------------------------------------------------------------------
    def set_dataset(self, dataset, source: str | Path | None = None, options: dict | None = None,
                    keep_sample: bool = False) -> None:
        """Open ``dataset`` (already read); a model that does not fit it is dropped. Nothing of the
        last dataset stays on show: with ``keep_sample`` the meshes from files stay (their gallery
        is now this dataset's), else nothing is on show until :meth:`show_entry` or :meth:`show_nothing`."""
        self.session.set_dataset(dataset, keep_model=False)
        self.dataset_source = str(source) if source is not None else (str(dataset.root) if dataset.root else None)
        self.dataset_options = dict(options or {})
        self.entry, self.gallery_choice, self.preview = None, None, None
        if keep_sample:
            self.events.identity.emit()
        else:
            self.sample = None

    def remembered_entry(self, remembered) -> Entry | None:
        """The entry of ``remembered`` (a :class:`~facelab.app.settings.Selection`: the sample on show
        when the app was last closed) if it belongs to the open dataset."""
        if remembered is None or not remembered.matches(self.dataset_source, self.dataset_options):
            return None
        return next((e for e in self.session.entries if e.index == remembered.index and e.label == remembered.label),
                    None)

    def nearest_first(self, entries: list[Entry]) -> list[Entry]:
        """``entries`` (as listed) from the one on show outward: the order to predict them in, so
        that the next clicks most likely find their prediction known."""
        here = next((i for i, e in enumerate(entries) if self.entry is not None and e.index == self.entry.index), 0)
        return [entries[i] for i in sorted(range(len(entries)), key=lambda i: abs(i - here))]

    # ---- showing samples ---------------------------------------------------------------------
    def show_entry(self, entry: Entry) -> Sample:
        """Show one dataset sample, predicted by the current model; raises a ``FacelabError`` if it cannot."""
        sample = self.session.sample(entry)
        self.entry, self.gallery_choice, self.preview = entry, None, None
        self.file_triangles = None
        self._show(sample)
        return sample

    def open_mesh(self, path: str | Path) -> Sample:
        """Show an expressive mesh from a file (its prediction, no ground truth yet); raises a
        ``FacelabError`` if it cannot be read or does not fit the model (else the dataset)."""
        from facelab.mesh import read_mesh

        mesh = self.session.check_mesh(read_mesh(path))
        sample = self.session.file_sample(mesh)
        self.file_triangles = mesh.triangles
        self.entry, self.gallery_choice, self.preview = None, None, None
        self._show(sample)
        return sample

    def open_ground_truth(self, path: str | Path) -> Sample:
        """Measure the sample on show against a neutral mesh from a file; raises a ``FacelabError``
        if there is no sample or the mesh is not of its template."""
        from facelab.mesh import read_mesh

        if self.sample is None:
            raise FacelabError("open an expressive mesh first: a ground truth belongs to an input.")
        truth = check_matches_template(read_mesh(path), self.triangles, len(self.sample.expressive))
        sample = self.session.with_truth(self.sample, truth)
        self.gallery_choice, self.preview = None, None
        self._show(sample)
        return sample

    def show_nothing(self) -> None:
        """No sample is on show (a dataset without samples, or none read yet)."""
        self.sample, self.entry, self.gallery_choice = None, None, None
        self.events.views.emit()
        self.events.identity.emit()

    def _show(self, sample: Sample) -> None:
        self.sample = sample
        self.events.sample.emit(sample)

    def set_loading(self, text: str | None) -> None:
        """Say in the input view what is being read (None: nothing is)."""
        self.loading = text
        self.events.views.emit()

    # ---- the right view and the training preview ---------------------------------------------
    def show_gallery_subject(self, subject: str, index: int) -> bool:
        """Show the neutral face of a gallery subject (dataset mesh ``index``) in the right view;
        the error stays to the true neutral. False when no sample or dataset is open."""
        if self.sample is None or self.session.dataset is None:
            return False
        self._show_neutral(subject, self.session.mesh(index), "Gallery")
        return True

    def show_training_subject(self, subject: str) -> bool:
        """Show a closest training subject's neutral face in the right view, as a gallery choice
        does. False when it has none of the sample's template."""
        neutral = self.session.subject_neutral(subject) if self.sample is not None else None
        if neutral is None or len(neutral) != len(self.sample.expressive):
            return False
        self._show_neutral(subject, neutral, "Training subject")
        return True

    def _show_neutral(self, subject: str, neutral: np.ndarray, kind: str) -> None:
        # An input the model re-posed is shown as it came: the subject's face joins it in its pose.
        self.gallery_reposed = self.session.reposing(self.sample) is not None
        if self.gallery_reposed:
            neutral = self.session.model.posed_like(neutral, self.sample.expressive)
        self.gallery_choice = (subject, neutral, kind)
        self.events.views.emit()

    def show_preview(self, event) -> None:
        """Show a training run's preview (a ``TrainingPreview``) instead of the model's prediction."""
        self.preview = event
        self.events.views.emit()

    def end_preview(self) -> None:
        """Back to the model's prediction (a run's previews end with the run)."""
        if self.preview is not None:
            self.preview = None
            self.events.views.emit()

    # ---- what applies ------------------------------------------------------------------------
    def panels(self, style: DisplayStyle) -> list[Panel]:
        """The three views' panels: the training preview, else the sample on show, with notes
        where a view has nothing (no sample, no model, no ground truth)."""
        sample = self.sample
        if self.preview is not None:
            event = self.preview
            suffix = f" (training, step {event.global_step})"
            # The preview is of the sample on show (the trainer previews the selected test pair):
            # only the prediction is the model-in-training's. Another sample's marks all three views.
            same = (sample is not None and np.shape(sample.expressive) == np.shape(event.expressive)
                    and np.array_equal(sample.expressive, event.expressive))
            panels = figure_panels(event.expressive, event.predicted, event.ground_truth, style, event.error,
                                   title_suffix="" if same else suffix)
            if same:
                panels[1].title += suffix
            return panels
        notes = {"truth": NO_TRUTH_NOTE}
        if sample is None:
            notes["input"] = self.loading or NO_SAMPLE_NOTE
            return figure_panels(None, None, None, style, notes=notes)
        if self.session.model is None:
            notes["predicted"] = self.loading or NO_MODEL_NOTE
        panels = figure_panels(sample.expressive, sample.predicted, sample.truth, style, sample.error, notes=notes)
        panels[0].subtitle = input_subtitle(sample)
        if self.gallery_choice is not None:
            subject, neutral, kind = self.gallery_choice
            panels[2].title = f"{kind}: {subject} (neutral)"
            if self.gallery_reposed:
                panels[2].subtitle = "re-posed like the input"
            panels[2].vertices = neutral
        return panels

    def readout(self) -> str:
        """The line under the views (HTML): the sample, its error, its gallery match, closest
        training subject and expression reading, and a re-posing the model's alignment made; or the
        training preview's error."""
        sample = self.sample
        if self.preview is not None:
            event = self.preview
            return (f"<b>Training preview</b>, step {event.global_step}: error mean "
                    f"{float(np.mean(event.error)):.3f} mm, max {float(np.max(event.error)):.3f} mm")
        if sample is None:
            return "No sample on show."
        parts = [f"<b>{escape(sample.label, quote=False)}</b>" + (f" ({sample.part})" if sample.part else "")]
        error = error_readout(sample)
        if error:
            parts.append(error)
        matches, rank = self.session.matches(sample, k=1) if sample.embedding is not None else ([], None)
        if matches:
            # The gallery holds the neutral faces of the split's subjects (the test subjects for a
            # test sample): a match there can be right or wrong, so it leads.
            best = matches[0]
            verdict = ""
            if sample.subject:
                verdict = (", the true subject" if best.subject == sample.subject
                           else f"; true subject {escape(sample.subject, quote=False)} at rank {rank.rank}"
                           if rank is not None else "")
            parts.append(f"gallery match <b>{escape(best.subject, quote=False)}</b> (cosine {best.score:.2f}{verdict})")
        if sample.top5:
            # The recognizer only knows the subjects the model trained on: for an unseen face its
            # answer is the nearest of them, not a guess of who it is.
            subject, probability = sample.top5[0]
            parts.append(f"closest training subject {escape(subject, quote=False)} (p = {probability:.2f})")
        if sample.expressions:
            expression, probability = sample.expressions[0]
            # An uncertain reading weighs several expressions' maps: such faces are predicted worse
            # (evaluate's expression_recognition.by_confidence).
            doubt = ", uncertain: look closely" if probability < UNCERTAIN_BELOW else ""
            parts.append(f"expression read as {escape(expression, quote=False)} (p = {probability:.2f}{doubt})")
        elif self.session.model is None:
            parts.append("the model is loading" if self.loading else "no model: no prediction")
        reposed = self.session.reposing(sample)
        return " &nbsp;|&nbsp; ".join(parts) + (f"<br>{reposed.sentence}" if reposed else "")

    def identity(self) -> IdentityContent:
        """The identity panel's content: the closest training subjects and the gallery matches of
        the sample on show, with a note on what is missing (a recognizer, a dataset's gallery)."""
        sample, model = self.sample, self.session.model
        if sample is None or model is None:
            return IdentityContent((self.loading or NO_MODEL_IDENTITY) if model is None else "")
        note = "" if sample.top5 else f"The {model.variant} model has no recognizer: no top-5."
        matches, rank = self.session.matches(sample, k=5)
        gallery = self.session.gallery_for(sample)
        if gallery is None:
            note = (note + " " if note else "") + "Open a dataset to match against its gallery."
        return IdentityContent(note, sample.top5, matches, rank, sample.subject, len(gallery) if gallery else 0,
                               self.gallery_choice[0] if self.gallery_choice else None)

    # ---- export ------------------------------------------------------------------------------
    def export_mesh(self, path: str | Path) -> Path:
        """Write the predicted neutral on show (a PLY with its per-vertex error)."""
        if self.sample is None:
            raise FacelabError("there is no sample on show to export.")
        return export_predicted_mesh(self.sample, self.triangles, path)

    def export_stats(self, path: str | Path) -> Path:
        """Write the error statistics of the sample on show (CSV or JSON)."""
        if self.sample is None:
            raise FacelabError("there is no sample on show to export.")
        model = self.session.model
        return export_statistics(self.sample, path, str(model.source) if model is not None and model.source else None)
