"""Where a model's neutralisation error comes from, on the default SynthFaces test split.

    python scripts/where_the_error_is.py models/synthfaces /tmp/runs/gca/last [--fit-identities 2700]

For each checkpoint, the mean per-vertex error (mm) over the 30 unseen test subjects of:

* ``prediction``: Dec(G(Enc(F_e))), what ``facelab evaluate`` reports;
* ``neutral_rebuilt``: Dec(Enc(F_n)), the ground-truth neutral rebuilt from its own code (the
  decoder's reach for an unseen face, given the right code);
* ``without_g``: Dec(Enc(F_e)), skipping the generator;
* ``latent_relative_error``: |G(z_e) - z_n| / |z_n|.

With ``--fit-identities N`` (the SynthFaces identities the checkpoint was trained on), maps from
z_e to z_n are also fitted afterwards on 16,000 of its training pairs and decoded: a ridge
regression (``linear_map``) and a residual MLP trained on the latent L1 of Eq. 2
(``mlp_map``, with its training L1 beside G's). It is how "Where the error is" in docs/history/paper_full_bundled_model.md
was measured: a map that fits the training codes better than G does can rebuild unseen faces
worse, since z_n is one fixed code per training subject.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from facelab.data.synth_dataset import load_synthfaces
from facelab.model import FaceLabModel


def _codes(model: FaceLabModel, vertices, rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(model.encode(vertices[rows]))


def _decoded_error(model: FaceLabModel, codes: torch.Tensor, truth: np.ndarray) -> float:
    faces = model.decode(codes.detach().numpy())
    return float(np.linalg.norm(faces - truth, axis=-1).mean())


def _fitted_maps(model: FaceLabModel, identities: int, test_codes: torch.Tensor, truth: np.ndarray) -> dict:
    data = load_synthfaces(identities=identities, seed=0)
    subjects = set(model.subjects)
    pairs = [pair for pair in data.pairs if pair.subject in subjects]
    rng = np.random.default_rng(0)
    chosen = [pairs[i] for i in np.sort(rng.choice(len(pairs), min(16000, len(pairs)), replace=False))]
    z_e = _codes(model, data.vertices, np.array([p.expressive for p in chosen]))
    z_n = _codes(model, data.vertices, np.array([p.neutral for p in chosen]))
    g_l1 = float((torch.from_numpy(model.translate(z_e.numpy())) - z_n).abs().mean())
    ones = torch.ones(len(z_e), 1)
    inputs = torch.cat([z_e, ones], 1)
    weights = torch.linalg.solve(inputs.T @ inputs + 1e-3 * torch.eye(inputs.shape[1]), inputs.T @ z_n)
    linear = _decoded_error(model, torch.cat([test_codes, torch.ones(len(test_codes), 1)], 1) @ weights, truth)
    torch.manual_seed(0)
    width = z_e.shape[1]
    mlp = torch.nn.Sequential(torch.nn.Linear(width, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, width))
    optimiser = torch.optim.Adam(mlp.parameters(), 1e-3)
    for _ in range(3000):
        batch = torch.randint(0, len(z_e), (256,))
        loss = (z_e[batch] + mlp(z_e[batch]) - z_n[batch]).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        mlp_l1 = float((z_e + mlp(z_e) - z_n).abs().mean())
        mlp_error = _decoded_error(model, test_codes + mlp(test_codes), truth)
    return {"training_latent_l1_of_g": g_l1, "linear_map": linear, "mlp_map": mlp_error,
            "training_latent_l1_of_mlp_map": mlp_l1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--fit-identities", type=int, default=0,
                        help="also fit z_e -> z_n maps on the training pairs of this many SynthFaces identities")
    args = parser.parse_args()
    test_data = load_synthfaces(identities=100, seed=0)
    test = test_data.pairs_of(test_data.split().test_subjects)
    expressive = np.array([p.expressive for p in test])
    neutral = np.array([p.neutral for p in test])
    truth = np.asarray(test_data.vertices[neutral])
    for path in args.checkpoints:
        model = FaceLabModel.load(path)
        if model.alignment.enabled or model.network.fusion is not None:
            # Decoded faces are then in each face's aligned frame, or not the prediction at all.
            raise SystemExit(f"{path}: this script measures the paper's variants trained without alignment "
                             "(facelab train --no-align); it cannot read an aligned or identity-preserving model.")
        model.network.eval()
        z_e = _codes(model, test_data.vertices, expressive)
        z_n = _codes(model, test_data.vertices, neutral)
        z_g = torch.from_numpy(model.translate(z_e.numpy()))
        result = {"checkpoint": path, "variant": model.variant, "prediction": _decoded_error(model, z_g, truth),
                  "neutral_rebuilt": _decoded_error(model, z_n, truth), "without_g": _decoded_error(model, z_e, truth),
                  "latent_relative_error": float(((z_g - z_n).norm(dim=1) / z_n.norm(dim=1)).mean())}
        if args.fit_identities and model.variant != "gca":
            result.update(_fitted_maps(model, args.fit_identities, z_e, truth))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
