"""Reference rows measured on the same split as the model.

- do-nothing: the expressive face taken as its own neutral (the error an expression causes);
- linear: ridge regression from the PCA coefficients of the expressive face to the neutral face's
  vertices, fitted on the training subjects. Its ridge strength is picked on held-out training
  subjects. For identification it compares its predicted neutral meshes (centred, flattened) by
  cosine similarity, as the model compares embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelab.data.dataset import FaceDataset, Pair


def _flat(dataset: FaceDataset, indices: list[int] | np.ndarray) -> np.ndarray:
    return np.asarray(dataset.vertices[np.asarray(indices)], dtype=np.float64).reshape(len(indices), -1)


@dataclass
class LinearNeutraliser:
    """neutral ~ mean_n + ((x_e - mean_e) @ components.T) @ weights, all flattened (3n,)."""

    mean_e: np.ndarray
    mean_n: np.ndarray
    components: np.ndarray  # (k, 3n)
    weights: np.ndarray     # (k, 3n)
    alpha: float

    @classmethod
    def fit(cls, dataset: FaceDataset, pairs: list[Pair], components: int = 200,
            alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0), seed: int = 0) -> LinearNeutraliser:
        """Fit on ``pairs``; the ridge strength (relative to the largest squared singular value)
        is chosen on a fifth of the subjects held out, then the model is refitted on all."""
        subjects = sorted({p.subject for p in pairs})
        held_out: set[str] = set()
        if len(subjects) >= 5:
            order = np.random.default_rng(seed).permutation(len(subjects))
            held_out = {subjects[i] for i in order[: max(1, len(subjects) // 5)]}
        fit_pairs = [p for p in pairs if p.subject not in held_out]
        val_pairs = [p for p in pairs if p.subject in held_out]
        best_alpha, best_error = alphas[len(alphas) // 2], np.inf
        if val_pairs:
            for alpha in alphas:
                model = cls._fit(dataset, fit_pairs, components, alpha)
                predicted = model.predict(_flat(dataset, [p.expressive for p in val_pairs]))
                truth = _flat(dataset, [p.neutral for p in val_pairs])
                error = np.linalg.norm((predicted - truth).reshape(len(val_pairs), -1, 3), axis=-1).mean()
                if error < best_error:
                    best_alpha, best_error = alpha, error
        return cls._fit(dataset, pairs, components, best_alpha)

    @classmethod
    def _fit(cls, dataset: FaceDataset, pairs: list[Pair], components: int, alpha: float) -> LinearNeutraliser:
        x_e = _flat(dataset, [p.expressive for p in pairs])
        x_n = _flat(dataset, [p.neutral for p in pairs])
        mean_e, mean_n = x_e.mean(axis=0), x_n.mean(axis=0)
        _, singular, vt = np.linalg.svd(x_e - mean_e, full_matrices=False)
        k = min(components, len(singular))
        basis = vt[:k]
        coefficients = (x_e - mean_e) @ basis.T
        gram = coefficients.T @ coefficients
        ridge = alpha * float(singular[0] ** 2)
        weights = np.linalg.solve(gram + ridge * np.eye(k), coefficients.T @ (x_n - mean_n))
        return cls(mean_e, mean_n, basis, weights, alpha)

    def predict(self, x_e_flat: np.ndarray) -> np.ndarray:
        return self.mean_n + ((x_e_flat - self.mean_e) @ self.components.T) @ self.weights

    def neutralise(self, vertices: np.ndarray) -> np.ndarray:
        """(B, n, 3) mm -> (B, n, 3) mm."""
        vertices = np.asarray(vertices, dtype=np.float64)
        return self.predict(vertices.reshape(len(vertices), -1)).reshape(vertices.shape).astype(np.float32)
