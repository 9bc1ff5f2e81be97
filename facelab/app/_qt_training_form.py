"""The training panel's form: what to train on, which network, how long, and where to.

The panel (:mod:`facelab.app._qt_training_panel`) asks it for the run it describes
(:meth:`TrainingForm.request`, a Qt-free :class:`~facelab.app.training_run.TrainingRequest`) and
locks it while a run trains. It builds without importing torch: the variants and the default
learning rate are read by :meth:`TrainingForm.load_choices` once the app has read its model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QWidget,
)

from facelab.app.session import path_samples_identities
from facelab.app.threads import ui_friendly_threads
from facelab.app.training_run import TrainingRequest, fresh_run_dir, plural, saved_run
from facelab.errors import FacelabError

if TYPE_CHECKING:
    from facelab.training.config import TrainConfig

SOURCE_OPEN = "open"
SOURCE_SYNTH = "synth"
SOURCE_PATH = "path"
SOURCES = {SOURCE_OPEN: "The open dataset", SOURCE_SYNTH: "SynthFaces (built-in)", SOURCE_PATH: "A folder or file"}
#: The method box's first entry: the bundled model's recipe (facelab/training/recipe.py).
RECOMMENDED_METHOD = "recommended"
#: The epochs box before the methods are read (TrainConfig's default, named here without torch).
INITIAL_EPOCHS = 30
#: The training code's alignment kinds (its CHOICES["alignment"]), named here so that the form
#: is built without importing torch.
ALIGNMENTS = {"auto": "auto (a check on validation subjects)", "similarity": "similarity (fit to the template)",
              "canonical": "canonical (similarity, then the data's frame)", "none": "none (faces as they are)"}


class TrainingForm(QWidget):
    def __init__(self, context, parent: QWidget | None = None) -> None:
        """``context`` answers ``open_dataset_context()`` -> (dataset, source, options) or None,
        ``current_model()`` -> model or None, and ``selected_index()`` -> mesh index or None."""
        super().__init__(parent)
        self.context = context
        self.running = False                       # a run trains: the form is locked
        self._build()

    def _build(self) -> None:
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.source = QComboBox()
        for key, label in SOURCES.items():
            self.source.addItem(label, key)
        self.data_path = QLineEdit()
        self.data_path.setPlaceholderText("dataset folder or morphable-model .npz")
        browse_data = QPushButton("...")
        browse_data.setFixedWidth(30)
        browse_data.clicked.connect(self._browse_data)
        self.identities = QSpinBox()
        self.identities.setRange(2, 10000)
        self.identities.setValue(100)
        self.identities.setToolTip("Identities to generate, for data that samples them: SynthFaces or a "
                                   "morphable-model file")
        data_row = QHBoxLayout()
        data_row.addWidget(self.source, 2)
        data_row.addWidget(self.identities, 1)
        path_row = QHBoxLayout()
        path_row.addWidget(self.data_path, 1)
        path_row.addWidget(browse_data)
        form.addRow("Data", data_row)
        form.addRow("", path_row)
        self.variant = QComboBox()       # filled by load_choices()
        self.variant.setToolTip("recommended: the bundled model's recipe (identity-preserving with the expression "
                                "mixture, its fits and no epoch by default; its fits want identities: the bundled model's had 2,700 SynthFaces "
                                "identities); identity-preserving: keeps the "
                                "person's geometry from the input; full: the paper's model; no-l2l / no-id: "
                                "ablations; gca: autoencoder baseline. Fine-tuning keeps the current model's method.")
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 100000)
        self.epochs.setSpecialValueText("0: fits only")
        self.epochs.setToolTip("0 fits the start only (its closed-form fits, no training step) and saves it: for the "
                               "identity-preserving variant nearly all of a run's quality, in minutes")
        self.epochs.setValue(INITIAL_EPOCHS)       # until load_choices() sets the default method's
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 4096)
        self.batch_size.setValue(16)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0.00001, 1.0)
        self.lr.setSingleStep(0.0001)        # its value and the variants: load_choices()
        numbers = QHBoxLayout()
        for label, widget in (("epochs", self.epochs), ("batch", self.batch_size), ("lr", self.lr)):
            numbers.addWidget(QLabel(label))
            numbers.addWidget(widget, 1)
        self.alignment = QComboBox()
        for key, label in ALIGNMENTS.items():
            self.alignment.addItem(label, key)
        self.alignment.setToolTip(
            "How faces are brought into the model's frame. auto: whichever of similarity and canonical a linear "
            "check on the validation subjects prefers; similarity: fitted onto the template; canonical: then moved "
            "back into the training faces' own frame; none: as they are. Fine-tuning keeps the model's alignment.")
        form.addRow("Method", self.variant)
        form.addRow("Alignment", self.alignment)
        form.addRow("Run", numbers)
        self.scratch = QRadioButton("from scratch")
        self.scratch.setToolTip("a new network, started as the rank-25 linear neutraliser of the training pairs "
                                "(see the README's training notes)")
        self.finetune = QRadioButton("fine-tune the current model")
        self.resume_run = QRadioButton("continue the run in the output folder")
        self.resume_run.setEnabled(False)
        self.scratch.setChecked(True)
        self._start_group = QButtonGroup(self)
        for button in (self.scratch, self.finetune, self.resume_run):
            self._start_group.addButton(button)
        start_row = QHBoxLayout()
        start_row.addWidget(self.scratch)
        start_row.addWidget(self.finetune)
        form.addRow("Start", start_row)
        form.addRow("", self.resume_run)
        self.preview_every = QSpinBox()
        self.preview_every.setRange(0, 100000)
        self.preview_every.setValue(50)
        self.preview_every.setSuffix(" steps")
        self.preview_every.setSpecialValueText("never")
        self.preview_every.setToolTip("Refresh the three views with the model-in-training's prediction every N steps")
        form.addRow("Preview every", self.preview_every)
        self.out_dir = QLineEdit()
        self.out_dir.setToolTip("A new time-stamped folder for each run, unless you choose one")
        self._auto_out_dir: str | None = None      # the folder the panel chose (None: the user chose)
        self.new_output_folder()
        browse_out = QPushButton("...")
        browse_out.setFixedWidth(30)
        browse_out.clicked.connect(self._browse_out)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_dir, 1)
        out_row.addWidget(browse_out)
        form.addRow("Output folder", out_row)

        self._source_chosen = False                # the user picked a source: keep it
        self._open_identities: int | None = None   # identities the open dataset sampled (None: fixed subjects)
        self.data_path.textChanged.connect(self._source_changed)
        self.source.activated.connect(self._source_picked)
        self.source.currentIndexChanged.connect(self._source_changed)
        self.finetune.toggled.connect(self._start_changed)
        self.finetune.toggled.connect(self._finetune_toggled)
        self.resume_run.toggled.connect(self._resume_toggled)
        self.out_dir.textChanged.connect(self._output_changed)
        self.variant.activated.connect(self._method_changed)      # a method the user picks
        self.set_open_dataset(None)
        self._source_changed()
        self._output_changed()

    def set_running(self, running: bool) -> None:
        """Lock the form while a run trains (its settings are the run's), and unlock it after."""
        self.running = running
        for widget in (self.epochs, self.scratch, self.finetune, self.out_dir):
            widget.setEnabled(not running)
        self._start_changed()                      # the data, method and run settings
        if not running:
            self._source_changed()
            self.model_changed()
            self._output_changed()
        else:
            self.resume_run.setEnabled(False)

    def load_choices(self) -> None:
        """Fill the variants and the default learning rate from the training code. Importing it
        imports torch, which the app reads in a worker thread while the window comes up: the window
        calls this once the model is read (and a run's form calls it before it is read)."""
        if self.variant.count():
            return
        from facelab.training.config import VARIANTS, TrainConfig
        from facelab.training.recipe import RECOMMENDED as RECIPE

        self.variant.addItem("recommended (the bundled model's recipe)", RECOMMENDED_METHOD)
        for variant in VARIANTS:
            self.variant.addItem(variant, variant)
        if self.epochs.value() == INITIAL_EPOCHS and not self.resume_run.isChecked():
            self.epochs.setValue(RECIPE["epochs"])  # the default method's, unless the user set one
        self.lr.setValue(TrainConfig.lr)
        self._start_changed()

    # ---- the data box ------------------------------------------------------------------------
    def set_open_dataset(self, name: str | None, identities: int | None = None) -> None:
        """The app opened a dataset (``name``) or has none (None): "The open dataset" names it, is
        offered only when there is one, and is the default unless the user picked another source.
        ``identities``: how many it sampled, for data that samples them (SynthFaces, a morphable
        model); the identities box then starts at that count."""
        self._open_identities = identities if name is not None else None
        if self._open_identities is not None:
            self.identities.setValue(self._open_identities)
        index = self.source.findData(SOURCE_OPEN)
        item = self.source.model().item(index)
        item.setEnabled(name is not None)
        short = name if name is None or len(name) <= 28 else name[:27].rstrip() + "…"
        self.source.setItemText(index, f"The open dataset ({short})" if name else "The open dataset (none open)")
        self.source.setItemData(index, name or "Open a dataset first (File menu)", Qt.ItemDataRole.ToolTipRole)
        if name is None and self.source.currentData() == SOURCE_OPEN:
            self.source.setCurrentIndex(self.source.findData(SOURCE_SYNTH))
        elif name is not None and not self._source_chosen:
            self.source.setCurrentIndex(index)
        self._source_changed()

    def prepare_new_run_on_open_dataset(self) -> None:
        """Make the form ready to train a new network on the open dataset: only Start is left."""
        if self.running:
            return
        self.source.setCurrentIndex(self.source.findData(SOURCE_OPEN))
        self._source_chosen = True
        self.scratch.setChecked(True)            # fine-tuning keeps the model's template
        self.new_output_folder()

    def _source_picked(self, _index: int) -> None:
        self._source_chosen = True

    # ---- the output folder -------------------------------------------------------------------
    def new_output_folder(self) -> None:
        """Propose a fresh time-stamped folder (unless the user chose one)."""
        if self._auto_out_dir is not None and self.out_dir.text().strip() != self._auto_out_dir:
            return                                 # the user's own folder stays
        self._auto_out_dir = str(fresh_run_dir())
        self.out_dir.setText(self._auto_out_dir)

    @property
    def output_folder_is_automatic(self) -> bool:
        return self._auto_out_dir is not None and self.out_dir.text().strip() == self._auto_out_dir

    def _source_changed(self) -> None:
        source = self.source.currentData()
        if self.running or self.resume_run.isChecked():
            return                                 # the run's own data
        self.identities.setEnabled(self._samples_identities(source))
        self.data_path.setEnabled(source == SOURCE_PATH)

    def _samples_identities(self, source) -> bool:
        """The chosen data samples its identities (SynthFaces, a morphable-model file): the box applies."""
        if source == SOURCE_SYNTH:
            return True
        if source == SOURCE_OPEN:
            return self._open_identities is not None
        return path_samples_identities(self.data_path.text())

    def _browse_data(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training data folder", self.data_path.text() or str(Path.home()))
        if folder:
            self.data_path.setText(folder)
            self.source.setCurrentIndex(self.source.findData(SOURCE_PATH))
            self._source_chosen = True

    def _browse_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", str(Path(self.out_dir.text()).parent))
        if folder:
            self.out_dir.setText(folder)           # the user's folder: no longer a proposed one

    def request(self) -> TrainingRequest:
        """The run the form describes (raises FacelabError for an incomplete form)."""
        from facelab.training.config import TrainConfig, architecture_of
        from facelab.training.recipe import recommended_config

        self.load_choices()
        if self.resume_run.isChecked():
            return self._resume_request()
        source = self.source.currentData()
        dataset, data, options = None, "synth", {}
        if source == SOURCE_OPEN:
            opened = self.context.open_dataset_context()
            if opened is None:
                raise FacelabError("no dataset is open: open one, or train on SynthFaces or a folder.")
            dataset, data, options = opened
            if self._open_identities is not None and int(self.identities.value()) != self._open_identities:
                # Another count of the same generator: the trainer samples it (identity i stays the same).
                dataset, options = None, {**options, "identities": int(self.identities.value())}
        elif source == SOURCE_SYNTH:
            options = {"identities": int(self.identities.value())}
        else:
            data = self.data_path.text().strip()
            if not data:
                raise FacelabError("no training data given: choose a dataset folder or a morphable-model file.")
            if path_samples_identities(data):
                options = {"identities": int(self.identities.value())}
        if not str(self.out_dir.text()).strip():
            raise FacelabError("no output folder given: choose where the run's checkpoints go.")
        if self.output_folder_is_automatic and Path(self.out_dir.text().strip()).expanduser().exists():
            self._auto_out_dir = None              # taken since it was proposed: a new one
            self.new_output_folder()
        out = Path(self.out_dir.text().strip()).expanduser()
        if (out / "config.json").exists():
            raise FacelabError(f"{out} already holds a run: choose another output folder, or continue that run "
                               "(Start: continue the run in the output folder).")
        init = None
        if self.finetune.isChecked():
            model = self.context.current_model()
            if model is None or model.source is None:
                raise FacelabError("there is no model to fine-tune: open a checkpoint, or train from scratch.")
            init = Path(model.source)
        # Fine-tuning keeps the model's method (and what its pairs were made of): a method chosen
        # for a new network does not apply.
        method = self.variant.currentData()
        if init is not None:
            settings = architecture_of(model.meta)
        elif method == RECOMMENDED_METHOD:
            settings = {"alignment": self.alignment.currentData()}
        else:
            settings = {"variant": method, "alignment": self.alignment.currentData()}
        settings.update(data=str(data), data_options=dict(options), epochs=int(self.epochs.value()),
                        batch_size=int(self.batch_size.value()), lr=float(self.lr.value()),
                        num_threads=ui_friendly_threads(), preview_every=int(self.preview_every.value()))
        config = (recommended_config(**settings) if method == RECOMMENDED_METHOD and init is None
                  else TrainConfig(**settings))
        if dataset is not None:
            config.preview_index = self._preview_index(dataset, config)
        return TrainingRequest(config.validate(), out, dataset, init)

    def _preview_index(self, dataset, config: TrainConfig) -> int:
        """The trainer previews test pair ``preview_index``: make it the sample selected in the app."""
        index = self.context.selected_index()
        if index is None or len(dataset.subjects) < 2:
            return 0
        test_pairs = dataset.pairs_of(dataset.split(config.train_fraction, config.split_seed).test_subjects)
        return next((i for i, pair in enumerate(test_pairs) if pair.expressive == index), 0)

    def _resume_request(self) -> TrainingRequest:
        """Continue the run in the output folder: its own data and settings; the epochs box may
        extend it, and this app's threads run it."""
        from facelab.training.config import TrainConfig

        out = Path(self.out_dir.text().strip()).expanduser()
        run = saved_run(out)
        if run is None:
            raise FacelabError(f"{out} holds no run to continue: expected the config.json and 'last' checkpoint "
                               "of a facelab run in it.")
        if run.finished and int(self.epochs.value()) <= run.epochs:
            raise FacelabError(f"the run in {out} has finished its {plural(run.epochs, 'epoch')}: set the epochs "
                               f"above {run.epochs} to extend it.")
        config = TrainConfig(epochs=int(self.epochs.value()), num_threads=ui_friendly_threads())
        return TrainingRequest(config, out, None, None, resume=True)

    @Slot()
    def _start_changed(self) -> None:
        """Fine-tuning keeps the model's method and alignment (its normalisation was taken in that
        frame); continuing a run keeps all of the run's settings but its number of epochs."""
        new_network = not (self.running or self.finetune.isChecked() or self.resume_run.isChecked())
        self.alignment.setEnabled(new_network)
        self.variant.setEnabled(new_network and self.variant.count() > 0)
        own_settings = not (self.running or self.resume_run.isChecked())
        self.lr.setEnabled(own_settings and self.variant.count() > 0)
        for widget in (self.source, self.data_path, self.identities, self.batch_size, self.preview_every):
            widget.setEnabled(own_settings)
        if own_settings:
            self._source_changed()

    @Slot()
    def _method_changed(self) -> None:
        """A method picked: the epochs box takes its default (the recipe trains none)."""
        from facelab.training.config import TrainConfig
        from facelab.training.recipe import RECOMMENDED as RECIPE

        if not self.running:
            recipe = self.variant.currentData() == RECOMMENDED_METHOD
            self.epochs.setValue(RECIPE["epochs"] if recipe else TrainConfig.epochs)

    @Slot()
    def _output_changed(self) -> None:
        """Continuing is offered when the output folder holds a run."""
        run = saved_run(self.out_dir.text().strip()) if self.out_dir.text().strip() else None
        self.resume_run.setEnabled(run is not None and not self.running)
        self.resume_run.setToolTip(f"The output folder holds {run.describe()}." if run is not None else
                                   "Choose an output folder that holds a run (its config.json and 'last' "
                                   "checkpoint) to continue it where it stopped.")
        if run is None and self.resume_run.isChecked():
            self.scratch.setChecked(True)
        elif run is not None and self.resume_run.isChecked():
            self.epochs.setValue(run.epochs)       # this folder's run's own

    @Slot(bool)
    def _finetune_toggled(self, checked: bool) -> None:
        """Fine-tuning trains epochs: the recipe's none would leave the model as it is."""
        if checked and self.epochs.value() == 0:
            self.epochs.setValue(INITIAL_EPOCHS)

    @Slot(bool)
    def _resume_toggled(self, checked: bool) -> None:
        run = saved_run(self.out_dir.text().strip()) if checked else None
        if run is not None:
            self.epochs.setValue(run.epochs)       # its own; a larger number extends it
        self._start_changed()

    def model_changed(self) -> None:
        """The app's model changed: fine-tuning is offered only for a model read from a checkpoint."""
        model = self.context.current_model()
        can_finetune = model is not None and getattr(model, "source", None) is not None
        self.finetune.setEnabled(can_finetune and not self.running)
        self.finetune.setToolTip("continue training the model on show, from its checkpoint" if can_finetune else
                                 "open a model first (File > Open checkpoint, or the bundled one)")
        if not can_finetune and self.finetune.isChecked():
            self.scratch.setChecked(True)
