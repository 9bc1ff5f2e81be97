"""The training panel: settings, Start / Pause-Resume / Stop, progress with ETA, live curves.

Training is the core ``Trainer`` in a worker thread (:mod:`facelab.app.workers`); this panel
receives its events as queued signals and never blocks the UI. Torch gets every core (see
:func:`~facelab.app.threads.ui_friendly_threads`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from facelab.app.session import path_samples_identities
from facelab.app.threads import ui_friendly_threads
from facelab.app.training_run import TrainingRequest, format_duration, fresh_run_dir, plural, run_summary
from facelab.app.workers import TrainingWorker, WorkerThread
from facelab.errors import FacelabError

if TYPE_CHECKING:
    from facelab.app._qt_loss_plot import LossPlot
    from facelab.training.config import TrainConfig

SOURCE_OPEN = "open"
SOURCE_SYNTH = "synth"
SOURCE_PATH = "path"
SOURCES = {SOURCE_OPEN: "The open dataset", SOURCE_SYNTH: "SynthFaces (built-in)", SOURCE_PATH: "A folder or file"}
#: The training code's alignment kinds (its CHOICES["alignment"]), named here so that the form
#: is built without importing torch.
ALIGNMENTS = {"auto": "auto (a check on validation subjects)", "similarity": "similarity (fit to the template)",
              "canonical": "canonical (similarity, then the data's frame)", "none": "none (faces as they are)"}
REFRESH_MS = 200


class TrainingPanel(QWidget):
    preview_ready = Signal(object)     # facelab.training.events.Preview
    run_finished = Signal(object)      # RunFinished
    run_failed = Signal(str, str)      # message, traceback
    running_changed = Signal(bool)
    user_error = Signal(str)           # a form error, shown by the window

    def __init__(self, context, parent: QWidget | None = None) -> None:
        """``context`` answers ``open_dataset_context()`` -> (dataset, source, options) or None,
        ``current_model()`` -> model or None, and ``selected_index()`` -> mesh index or None."""
        super().__init__(parent)
        self.context = context
        self.runner: WorkerThread | None = None
        self.worker: TrainingWorker | None = None
        self._closing = False
        self._last_step = None
        self._started_at = None
        self._run_info = None
        self._final_text: str | None = None   # the bar's text once the run has ended
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self._refresh)
        self._set_running(False)

    # ---- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        form_box = QWidget()
        form_box.setMaximumWidth(430)
        column = QVBoxLayout(form_box)
        column.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
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
        self.variant.setToolTip("full: the paper's model; no-l2l / no-id: ablations; gca: autoencoder baseline; "
                                "identity-preserving: keeps the person's geometry from the input (the bundled "
                                "model). Fine-tuning keeps the current model's variant.")
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 100000)
        self.epochs.setSpecialValueText("0: fits only")
        self.epochs.setToolTip("0 fits the start only (its closed-form fits, no training step) and saves it: for the "
                               "identity-preserving variant nearly all of a run's quality, in minutes")
        self.epochs.setValue(30)
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
        form.addRow("Variant", self.variant)
        form.addRow("Alignment", self.alignment)
        form.addRow("Run", numbers)
        self.scratch = QRadioButton("from scratch")
        self.scratch.setToolTip("a new network, started as the rank-25 linear neutraliser of the training pairs "
                                "(see the README's training notes)")
        self.finetune = QRadioButton("fine-tune the current model")
        self.scratch.setChecked(True)
        self._start_group = QButtonGroup(self)
        self._start_group.addButton(self.scratch)
        self._start_group.addButton(self.finetune)
        start_row = QHBoxLayout()
        start_row.addWidget(self.scratch)
        start_row.addWidget(self.finetune)
        form.addRow("Start", start_row)
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
        column.addLayout(form)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step; the run keeps a valid 'last' checkpoint")
        for button in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        column.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        # A busy bar (range 0-0) draws no text whatever its format: the set-up stage is written
        # over the bar instead, centred as the bar's own text would be.
        self.progress_stage = QLabel("", self.progress)
        self.progress_stage.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.progress_stage.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.progress_stage.setStyleSheet("background: transparent;")
        self.progress_stage.hide()
        self.progress.installEventFilter(self)
        column.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addWidget(self.status)
        column.addStretch(1)
        outer.addWidget(form_box)
        # The curves' plot (pyqtgraph, a large import) is made by make_plot(), after the app's first sample.
        self.plot: LossPlot | None = None
        self._plot_box = QWidget()
        QVBoxLayout(self._plot_box).setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self._plot_box, 1)

        self._source_chosen = False                # the user picked a source: keep it
        self._open_identities: int | None = None   # identities the open dataset sampled (None: fixed subjects)
        self.data_path.textChanged.connect(self._source_changed)
        self.source.activated.connect(self._source_picked)
        self.source.currentIndexChanged.connect(self._source_changed)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.finetune.toggled.connect(self._start_changed)
        self.stop_button.clicked.connect(self.stop)
        self.set_open_dataset(None)
        self._source_changed()

    def make_plot(self) -> LossPlot:
        """The loss curves' plot, made on first need: pyqtgraph's import (with the Qt modules it
        brings) would hold the window's first frame back."""
        if self.plot is None:
            from facelab.app._qt_loss_plot import LossPlot

            self.plot = LossPlot()
            self._plot_box.layout().addWidget(self.plot)
        return self.plot

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        if watched is self.progress and event.type() == event.Type.Resize:
            self.progress_stage.setGeometry(self.progress.rect())
        return super().eventFilter(watched, event)

    def _set_stage(self, text: str) -> None:
        """Show ``text`` on the bar: its format when it has a range, a label over it while it is busy."""
        self.progress.setFormat(text)
        busy = self.progress.minimum() == self.progress.maximum() == 0
        self.progress_stage.setText(text if busy else "")
        self.progress_stage.setGeometry(self.progress.rect())
        self.progress_stage.setVisible(busy and bool(text))

    def progress_text(self) -> str:
        """What the bar reads now (a busy bar's own text is empty: then the stage over it)."""
        if self.progress_stage.isVisible():
            return self.progress_stage.text()
        return self.progress.text()

    def load_choices(self) -> None:
        """Fill the variants and the default learning rate from the training code. Importing it
        imports torch, which the app reads in a worker thread while the window comes up: the window
        calls this once the model is read (and a run's form calls it before it is read)."""
        if self.variant.count():
            return
        from facelab.training.config import VARIANTS, TrainConfig

        self.variant.addItems(list(VARIANTS))
        self.variant.setCurrentText(TrainConfig.variant)  # the core defaults
        self.lr.setValue(TrainConfig.lr)
        for widget in (self.variant, self.lr):
            widget.setEnabled(not self.running)

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
        self.start_button.setFocus()

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
        if self.running:
            return
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

    # ---- a run -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True from Start until the UI has handled the run's last event (not only until the
        worker thread ends: its last signals may still be queued then)."""
        return self.runner is not None

    def request(self) -> TrainingRequest:
        """The run the form describes (raises FacelabError for an incomplete form)."""
        from facelab.training.config import TrainConfig, architecture_of

        self.load_choices()
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
            raise FacelabError(f"{out} already holds a run: choose another output folder.")
        init = None
        if self.finetune.isChecked():
            model = self.context.current_model()
            if model is None or model.source is None:
                raise FacelabError("there is no model to fine-tune: open a checkpoint, or train from scratch.")
            init = Path(model.source)
        # Fine-tuning keeps the model's method: a variant chosen for a new network does not apply.
        method = (architecture_of(model.meta) if init is not None else
                  {"variant": self.variant.currentText(), "alignment": self.alignment.currentData()})
        config = TrainConfig(data=str(data), data_options=dict(options), **method,
                             epochs=int(self.epochs.value()), batch_size=int(self.batch_size.value()),
                             lr=float(self.lr.value()), num_threads=ui_friendly_threads(),
                             preview_every=int(self.preview_every.value()))
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

    @Slot()
    def start(self, request: TrainingRequest | None = None) -> bool:
        """Start a run (the form's, unless ``request`` is given); False if it could not start."""
        if self.running:
            return False
        try:
            request = request or self.request()
        except FacelabError as error:
            self.user_error.emit(str(error))
            return False
        self.worker = TrainingWorker(request.config, request.run_dir, request.dataset, request.init_checkpoint)
        worker = self.worker
        worker.preparing.connect(self._on_preparing)
        worker.run_started.connect(self._on_run_started)
        worker.step_done.connect(self._on_step)
        worker.epoch_done.connect(self._on_epoch)
        worker.checkpoint_saved.connect(self._on_checkpoint)
        worker.preview.connect(self._on_preview)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.done.connect(self._on_done)
        self.runner = WorkerThread(worker, self)
        self.make_plot().reset()
        self._last_step = None
        self._run_info = None
        self._final_text = None
        self._started_at = time.perf_counter()
        self.progress.setRange(0, 0)        # busy until the trainer reports its size
        self._set_stage("preparing ...")
        self.status.setText(f"Training {request.config.variant} into {request.run_dir}")
        self._set_running(True)
        self.runner.start()
        self.timer.start()
        return True

    @Slot()
    def toggle_pause(self) -> None:
        if not self.running or self.worker is None or self.worker.control.stop_requested:
            return
        control = self.worker.control
        if control.paused:
            control.resume()
            self.pause_button.setText("Pause")
            self.status.setText("Resumed.")
        else:
            control.pause()
            self.pause_button.setText("Resume")
            self.status.setText("Paused (the worker waits between steps).")
        self._refresh()

    @Slot()
    def stop(self) -> None:
        if self.running and self.worker is not None:
            self.worker.control.stop()
            self.stop_button.setEnabled(False)
            self.pause_button.setEnabled(False)
            self.status.setText("Stopping after the current step; saving a checkpoint ...")

    def shutdown(self) -> None:
        """Stop a run and wait for its thread (the window is closing): no signal is handled after."""
        self._closing = True
        self.timer.stop()
        if self.worker is not None:
            for signal in (self.worker.preparing, self.worker.run_started, self.worker.step_done, self.worker.epoch_done,
                           self.worker.checkpoint_saved, self.worker.preview, self.worker.finished,
                           self.worker.failed):
                try:
                    signal.disconnect()
                except (RuntimeError, TypeError):
                    pass
            self.worker.control.stop()
        if self.runner is not None:
            self.runner.wait()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.pause_button.setText("Pause")
        for widget in (self.source, self.data_path, self.identities, self.epochs, self.batch_size,
                       self.scratch, self.finetune, self.preview_every, self.out_dir):
            widget.setEnabled(not running)
        for widget in (self.variant, self.lr):
            widget.setEnabled(not running and self.variant.count() > 0)
        self._start_changed()
        if not running:
            self._source_changed()
            self.model_changed()
        self.running_changed.emit(running)

    @Slot()
    def _start_changed(self) -> None:
        """Fine-tuning keeps the model's alignment (its normalisation was taken in that frame)."""
        self.alignment.setEnabled(not self.running and not self.finetune.isChecked())

    def model_changed(self) -> None:
        """The app's model changed: fine-tuning is offered only for a model read from a checkpoint."""
        model = self.context.current_model()
        can_finetune = model is not None and getattr(model, "source", None) is not None
        self.finetune.setEnabled(can_finetune and not self.running)
        self.finetune.setToolTip("continue training the model on show, from its checkpoint" if can_finetune else
                                 "open a model first (File > Open checkpoint, or the bundled one)")
        if not can_finetune and self.finetune.isChecked():
            self.scratch.setChecked(True)

    # ---- events from the worker (queued to the UI thread) ------------------------------------
    @Slot(object)
    def _on_preparing(self, event) -> None:
        self._set_stage(f"{event.stage} ...")

    @Slot(object)
    def _on_run_started(self, event) -> None:
        self._run_info = event
        total = max(1, event.epochs * event.steps_per_epoch)
        self.progress.setRange(0, total)
        self.progress.setValue(event.start_epoch * event.steps_per_epoch + event.start_step)
        start = f"epoch {event.start_epoch + 1}/{event.epochs} - starting" if event.epochs else "saving the start"
        self._set_stage(start)
        self.status.setText(f"{event.train_pairs} training pairs of {event.train_subjects} subjects, "
                            f"{event.validation_subjects} validation subjects, {event.steps_per_epoch} steps "
                            f"per epoch, {event.device}; run folder {event.run_dir}")

    @Slot(object)
    def _on_step(self, event) -> None:
        self._last_step = event
        self.plot.add_step(event.global_step, event.losses)

    @Slot(object)
    def _on_epoch(self, event) -> None:
        error = event.metrics.get("val_mean_error_mm")
        self.plot.add_epoch(event.epoch + 1, error)
        best = " (best so far)" if event.is_best else ""
        if error is not None and error == error:
            self.status.setText(f"Epoch {event.epoch + 1}/{event.epochs}: loss {event.metrics.get('total', float('nan')):.4f}, "
                                f"validation error {error:.3f} mm{best}")

    @Slot(object)
    def _on_checkpoint(self, event) -> None:
        pass

    @Slot(object)
    def _on_preview(self, event) -> None:
        if not self._closing:
            self.preview_ready.emit(event)

    @Slot(object)
    def _on_finished(self, result) -> None:
        self.status.setText(f"{self.summary(result)} Run folder: {result.run_dir}")
        self._refresh()
        self._final_text = self._final_progress_text(result)
        self._show_final()
        if not self._closing:
            self.run_finished.emit(result)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.status.setText(f"<span style='color:#b00020'>Training failed: {message}</span>")
        step = self._last_step
        if step is None:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        self._final_text = "failed" + (f" at step {step.global_step}" if step is not None else "")
        self._show_final()
        if not self._closing:
            self.run_failed.emit(message, details)

    @Slot()
    def _on_done(self) -> None:
        if self.runner is not None:
            self.runner.wait()
        self.timer.stop()
        self._refresh()
        self.runner = None
        self._set_running(False)
        self.new_output_folder()                  # the next run gets a new folder (unless the user chose one)

    def summary(self, result) -> str:
        """How the run ``result`` ended, in one sentence."""
        return run_summary(result, self._last_step)

    def _final_progress_text(self, result) -> str:
        step = self._last_step
        if result.status == "completed":
            best = result.best_val_error_mm
            done = plural(result.epochs_done, "epoch") if result.epochs_done else "the start only"
            return (f"completed: {done}"
                    + (f", best validation {best:.2f} mm" if best is not None and best == best else ""))
        if step is None:
            return "stopped before the first step"
        saved = "last checkpoint saved" if result.last_checkpoint is not None else "no checkpoint saved"
        return f"stopped at step {step.global_step} of {step.epochs * step.steps_per_epoch} ({saved})"

    def _show_final(self) -> None:
        """The bar as the run left it, with its final text (not the progress text of its last step)."""
        if self.progress.minimum() == self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        if self._final_text is not None and self._final_text.startswith("completed"):
            self.progress.setValue(self.progress.maximum())
        self._set_stage(self._final_text or "idle")

    @Slot()
    def _refresh(self) -> None:
        if self.plot is not None:
            self.plot.refresh()
        if self._final_text is not None:
            self._show_final()
            return
        step = self._last_step
        if step is None:
            return
        total = max(1, step.epochs * step.steps_per_epoch)
        if self.progress.maximum() != total:
            self.progress.setRange(0, total)
        self.progress.setValue(step.global_step)
        paused = self.worker is not None and self.worker.control.paused and self.running
        eta = "paused" if paused else f"ETA {format_duration(step.eta_s)}"
        self._set_stage(f"epoch {step.epoch + 1}/{step.epochs} - step {step.step + 1}/{step.steps_per_epoch}"
                        f" - {eta}")
