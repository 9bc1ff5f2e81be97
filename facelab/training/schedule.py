"""The learning-rate schedule and the per-layer learning rates of the network's optimiser.

Schedules (``TrainConfig.lr_schedule``), stepped after every optimiser step:

* ``"cosine"`` (default): a linear warm-up over ``warmup_steps`` (at most a tenth of the run),
  then a cosine from ``lr`` down to zero at the run's last step (``epochs x steps per epoch``).
  Annealing to zero is what lets a run end on a low-noise solution: at a constant 1e-3 the
  earlier bundled model's validation error stopped improving after its second epoch. A stopped
  run resumed with the same ``--epochs`` continues the same curve (and ends with the same
  weights as an uninterrupted run); extending a run (``--resume --epochs N`` with a larger N)
  recomputes the cosine over the new length, so the rate rises again to that curve's value at
  the current step.
* ``"exponential"``: ``lr x lr_decay ** epoch``, the reference implementations' 0.99 per epoch.

The encoder's fully connected layer reads every feature of every vertex (n x 32 inputs:
135,648 for SynthFaces). Adam moves each weight by about the learning rate whatever its
gradient's size, so a step moves that layer's outputs about fan-in times further than a small
layer's; from the linear initialisation, a plain 3e-4 threw the codes off (test error 0.53 ->
0.94 mm within 100 steps) where a 0.03x rate for that layer kept and improved it (0.55 mm). Its
rate is scaled by ``wide_layer_lr_fan_in / fan_in`` (1/fan-in, as muP prescribes for Adam),
capped at 1: 0.03 for SynthFaces.

The recogniser R has a learning rate of its own (``recognizer_lr``, 1e-3), like D: both start
random while the rest of the network starts at the linear solution (``weight_init``), which
takes the smaller ``lr`` (3e-4) to be refined rather than thrown off. At 3e-4 everywhere R's
cross-entropy had fallen from 13.4 to 12.7 after 200 steps; at 1e-3 to 10.5.

The generator G may take a rate of its own (``generator_lr``; None, the default, gives it
``lr``): its latent targets are one fixed code per training subject, which a fast G can learn
to recall rather than to predict. A tenth of ``lr`` gave 0.420 mm against 0.426 mm at 2,700
identities, and 0.395 against 0.398 mm with ``l1_reduction="sum"`` (the bundled model's recipe);
one seed each, too little to change the default.

The discriminator's optimiser is not scheduled: it keeps ``discriminator_lr`` to the end. With
D's rate on the same cosine, 600 steps at 900 identities ended at 0.494 mm on the test split
against 0.459 mm (``scripts/recipe_screen.py``); why is not established.
"""

from __future__ import annotations

import math

import torch
from torch import nn

def parameter_groups(network: nn.Module, config) -> list[dict]:
    """The network's (not D's) parameters for its optimiser: the encoder's fully connected
    weight in a group of its own, with a learning rate scaled down by its fan-in."""
    wide = network.encoder.to_latent.weight
    scale = min(1.0, config.wide_layer_lr_fan_in / wide.shape[1]) if config.wide_layer_lr_fan_in else 1.0
    recognizer = set() if network.recognizer is None else {id(p) for p in network.recognizer.parameters()}
    own_rate = network.generator is not None and config.generator_lr is not None
    generator = {id(p) for p in network.generator.parameters()} if own_rate else set()
    rest = [p for p in network.generator_parameters() if p is not wide and id(p) not in recognizer | generator]
    groups = [{"params": rest, "lr": config.lr}]
    if scale == 1.0:
        groups[0]["params"].append(wide)
    else:
        groups.append({"params": [wide], "lr": config.lr * scale})
    if generator:
        groups.append({"params": list(network.generator.parameters()), "lr": config.generator_lr})
    if recognizer:
        groups.append({"params": list(network.recognizer.parameters()), "lr": config.recognizer_lr})
    return groups


def make_scheduler(optimizer: torch.optim.Optimizer, config, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule: the factor applied to each group's learning rate after ``step`` steps."""
    total = max(1, config.epochs * steps_per_epoch)
    per_epoch = max(1, steps_per_epoch)
    warmup = max(0, min(config.warmup_steps, total // 10))  # a short run warms up over its first tenth

    if config.lr_schedule == "exponential":
        def factor(step: int) -> float:
            return config.lr_decay ** (step // per_epoch)
    else:
        def factor(step: int) -> float:
            ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
            return ramp * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
