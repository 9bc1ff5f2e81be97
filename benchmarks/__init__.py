"""facelab's benchmark suite: facelab side by side with the reference implementation, against its targets.

Run::

    make bench                                   # everything; writes docs/results/benchmarks.{json,md}
    python -m benchmarks                         # the same
    python -m benchmarks --only cheb_layer --json /tmp/layer.json    # one (repeatable or comma list)
    python -m benchmarks --quick --json /tmp/smoke.json               # smoke run: few repetitions
    python -m benchmarks --device cpu|cuda|all   # all (default): the CPU, and CUDA when present
    python -m benchmarks.time_to_quality         # the time-to-quality judgement (<= 16 min, its own file)

Only a full run (no ``--only``, no ``--quick``) writes ``docs/results/`` by default. Every
comparison runs both sides in the same process, alternating call by call, after a warm-up, and
reports the median and the inter-quartile range (``benchmarks/timing.py``). Meshes: the
SynthFaces template (4,239 vertices) and generated face-like disks of exactly 5,023 (CoMA) and
26,317 (FaceScape) vertices (``benchmarks/meshes.py``). ``benchmarks/paper_tables.py`` is a separate script,
not part of the suite.

Benchmarks (``--only`` names) and the results they produce
-------------------------------------------------------------

``cheb_layer`` (``cheb_layer.py``), per device and mesh, B = 16, 16 -> 16 channels, K = 6:

* ``cheb_layer.forward``: forward under ``no_grad``, ours against ``torch_geometric.nn.ChebConv``
  (same weights and Laplacian, static batched graph). ``value``: speed-up (x). Reported.
* ``cheb_layer.forward_backward``: forward + backward (gradients of input, weights and bias).
  ``value``: speed-up. Target: >= 15x at 5,023 vertices, and outputs and gradients equal to a
  relative 1e-5 (``extra.relative_difference``).
* ``cheb_layer.gflops``: ``value``: the dense part's GFLOP/s (the K weight products, timed alone
  on the layer's own terms) as a fraction of its memory roofline: its flops per byte times the
  copy bandwidth measured in the same run (capped by a 2048^3 float32 matmul's GFLOP/s). Reported.
  ``extra.gflops``: layer forward, dense part, peak; ``copy_bandwidth_gb_s``,
  ``dense_part_flops_per_byte``, ``dense_part_roofline_gflops``, ``roofline_of_peak``,
  ``dense_part_of_peak``.

``training_step`` (``training_step.py``): ``training_step``, the trainer's own step of the
``full`` variant at batch 16 (both branches, D step included, batch fetch included), ours against
the same network with ``conv="pyg"``. ``value``: ratio of pairs/s; ``extra.pairs_per_s``.
Target: >= 12x at 5,023.

``neutralise`` (``neutralise.py``): ``neutralise.single`` (``value``: median ms for one mesh,
numpy in, numpy out; target <= 5 ms at 5,023) and ``neutralise.batch64`` (``value``: meshes/s
for a batch of 64; reported).

``training_memory`` (``training_memory.py``, CPU): ``training_memory``, peak memory (MB) of a child
process that trains at batch 16. Per size, on a small paired dataset (12 subjects), the ``full``
variant: ``value`` the peak resident set (``VmHWM``, imports and data included); reported. Then
the row that is judged: the real SynthFaces cache of the bundled model's recipe (2,700
identities, 5 GB, memory-mapped; 4,239 vertices), trained as ``facelab train`` trains the bundled
model's ``train_config`` from scratch (loading, linear start, subspace and mixture fits), then 10
steps: ``value`` training's own peak (``RssAnon`` + ``RssShmem``, sampled by the parent), beside
``ours.peak_rss_mb`` (``VmHWM``, what ``top`` shows) and ``ours.peak_file_mb`` (mapped files: the
dataset's pages read so far and the libraries, which the kernel may drop);
``extra.peak_own_by_stage_mb``: the own peak in each stage (imports, loading data, each fit,
training steps). Target: <= 2048 MB.
``value`` null when the cache is missing: it is never generated here. ``--quick``: the
100-identity set instead, reported, not judged.

``shared_cores`` (``shared_cores.py``, CPU): ``neutralise.shared_cores`` (``value``: how many times
slower a batch of 64 is neutralised while a second facelab process does the same on the same
cores than alone; target <= 3x at 5,023 vertices, 2x being a fair share of 2 cores; the
reference is the same with libgomp's default spin, see ``facelab/openmp.py``).

``batch_commands`` (``batch_commands.py``, CPU, meshes up to 10,000 vertices; targets at 5,023):
``batch.neutralise_folder`` (``value``: meshes/s of a folder of PLY files read, predicted and
written; target >= 100, and the model alone on the same meshes at most 1.5x faster),
``batch.render_folder`` (``value``: figures/s of ``facelab render`` on a folder with ground truth,
scale 1; target >= 5) and ``batch.identify`` (``value``: s for 1,000 probe files against a
1,000-subject gallery; target <= 20).

``time_to_quality`` (``time_to_quality.py``, CPU): ``time_to_quality`` reports the committed
judgement ``docs/results/time_to_quality.json``, written by its own command,
``python -m benchmarks.time_to_quality`` (at most 16 minutes: the command, stopped at 15, then
its scoring; its ``generated_by`` and ``commit`` are in the file and in ``params.commit``): the
bundled model's recipe run from scratch by ``facelab train`` (its command is in that module's
docstring), its clock from the command's start with an empty cache (SynthFaces' generation, the
linear start and the fits included); each checkpoint (the start, then each epoch's) is scored on
the default test split by ``facelab evaluate`` after the command. ``value``: minutes until the
first checkpoint within 1.25x the bundled model's test error (read from
``docs/results/bundled_model.json``; None: not reached). Target: <= 15 min.
``extra.checkpoints``: epoch, ``after_s``, validation and test error; ``extra.stages``: the
command's progress lines with their times. ``time_to_quality.smoke`` runs the same code at 40
identities (16 with ``--quick``): ``value`` the command's minutes; a check of the plumbing, no
target.

``app`` (``app.py`` + ``app_session.py`` under ``xvfb-run``, CPU): ``app.start`` (``value``: s from
process creation to the first frame showing a sample, its input and ground truth; target <= 3 s
on a quiet machine; ``ours.window_frame_s`` the window's own first frame), ``app.start_prediction``
(``value``: s to the first frame showing that sample's prediction; reported),
``app.switch`` (ms to show another sample, median of 20; target <= 30 ms), ``app.timer_gaps`` (``value``: 95th percentile of a
10 ms QTimer's gaps while training runs in the worker; target <= 50 ms).

``profile`` (``op_profile.py``, CPU): ``profile.training_step``, ``profile.cheb_layer`` and
``profile.neutralise``:
torch.profiler's top operators by self CPU time (``ours.top_ops``); no target.

JSON layout (``docs/results/benchmarks.json``)
----------------------------------------------

::

    {
      "machine":  {"cpu", "cores", "cores_available", "torch_threads", "torch", "torch_geometric",
                   "python", "platform", "devices", "gpu" (with CUDA), "load_average_at_start", "git_commit"},
      "settings": {"quick", "benchmarks", "sizes", "app_training_seconds", "total_seconds"},
      "results": [
        {
          "name": "cheb_layer.forward_backward",     # one of the names above
          "device": "cpu" | "cuda",
          "mesh": "generated face (5,023 vertices)",  "n_vertices": 5023,
          "params": {...},                           # batch, channels, K, variant ...
          "ours":      {"median_ms", "spread_ms" (IQR), "q1_ms", "q3_ms", "min_ms", "max_ms", "repeats"}
                       or a dict of the numbers measured (memory, curve ...),
          "reference": the same for the reference implementation, or null,
          "ratio":  how many times better ours is than the reference (speed-up, share of peak), or null,
          "value":  the number the target judges, in "unit" (null: nothing to judge),
          "unit":   "x faster", "ms", "MB", "min", ...,
          "target": {"text", "op" (">=" | "<="), "threshold", "n_vertices" (the size it is judged at,
                     null: every size)} or null,
          "met":    true | false | null (no target at this size, or not judgeable),
          "extra":  {...},                           # e.g. relative differences, GFLOP/s, pairs/s
          "notes":  "..."
        }
      ],
      "errors": [{"benchmark", "error"}]             # benchmarks that failed (the run goes on, exit status 1)
    }
"""
