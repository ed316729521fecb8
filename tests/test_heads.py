"""The closed-form head: the same minimizer as scikit-learn, at a fraction of the cost."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from keras_tl._utils import arrays
from keras_tl._utils import logistic
from keras_tl.heads import fit_linear_head


def _embeddings(n, d, classes=4, seed=0):
    # Class clusters in a random low-rank subspace plus noise: like real
    # embeddings, with a decaying spectrum.
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    mixing = rng.normal(size=(16, d))
    centers = rng.normal(size=(classes, 16))
    latent = centers[labels] + 0.8 * rng.normal(size=(n, 16))
    features = np.abs(latent @ mixing + 0.3 * rng.normal(size=(n, d)))
    return features.astype(np.float32), labels


def _objective(kernel, bias, features, labels, C):
    z = features / np.linalg.norm(features, axis=1, keepdims=True)
    logits = z @ kernel + bias
    logits -= logits.max(1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    n = len(labels)
    return -log_probs[np.arange(n), labels].mean() + (kernel**2).sum() / (2 * C * n)


@pytest.mark.parametrize("n,d", [(60, 200), (300, 40)], ids=["fewer_examples", "more_examples"])
def test_reaches_scikit_learns_minimum(n, d):
    # n < d solves in the span of the examples, n >= d in the rotated basis
    # of all d dimensions; both must find scikit-learn's optimum.
    features, labels = _embeddings(n, d)
    z = features / np.linalg.norm(features, axis=1, keepdims=True)
    C = 10.0
    reference = LogisticRegression(C=C, tol=1e-10, max_iter=5000).fit(z, labels)
    kernel, bias, _ = fit_linear_head(features, labels, 4, C=C)
    ours = _objective(kernel, bias, features, labels, C)
    theirs = _objective(reference.coef_.T, reference.intercept_, features, labels, C)
    assert ours <= theirs + 0.01 * theirs
    agreement = np.mean((z @ kernel + bias).argmax(-1) == reference.predict(z))
    assert agreement >= 0.97


def test_batched_problems_equal_problems_solved_alone():
    features, labels = _embeddings(90, 120, seed=1)
    solver = logistic.BatchedLogisticSolver(features, labels, 4)
    mask = np.ones(90, np.float32)
    mask[::3] = 0.0
    weights = np.stack([np.ones(90, np.float32), mask, mask])
    penalties = [1e-3, 1e-3, 1e-1]
    together, biases = solver.solve(weights, penalties)
    for q in range(3):
        alone, bias = solver.solve(weights[q : q + 1], penalties[q : q + 1])
        np.testing.assert_allclose(together[q], alone[0], atol=2e-4)
        np.testing.assert_allclose(biases[q], bias[0], atol=2e-4)
    # A held-out row changes its problem's solution; the others do not see it.
    assert np.abs(together[0] - together[1]).max() > 1e-3


def test_memory_mapped_embeddings_give_the_same_head(tmp_path):
    features, labels = _embeddings(240, 32, seed=2)
    path = tmp_path / "train.npy"
    np.save(path, features)
    mapped = np.load(path, mmap_mode="r")
    in_memory = fit_linear_head(features, labels, 4)
    from_disk = fit_linear_head(mapped, labels, 4)
    np.testing.assert_allclose(in_memory[0], from_disk[0], atol=1e-5)
    assert in_memory[2] == from_disk[2]


def test_one_trace_serves_every_fit_and_shape():
    for n, d, classes in [(50, 70, 3), (80, 90, 5)]:
        features, labels = _embeddings(n, d, classes=classes, seed=n)
        fit_linear_head(features, labels, classes)  # 3-fold choice, then a final fit
    traced = logistic._traced_steps(projected=False)
    assert traced.experimental_get_tracing_count() == 1


def test_large_data_chooses_on_one_hold_out(monkeypatch):
    # From HOLDOUT_MIN_EXAMPLES on, one stratified split replaces 3 folds:
    # 5 problems (one per C) instead of 15.
    import keras_tl.heads as heads

    monkeypatch.setattr(heads, "HOLDOUT_MIN_EXAMPLES", 100)
    seen = []
    solve = logistic.BatchedLogisticSolver.solve

    def counting_solve(self, row_weights, penalties):
        seen.append(len(penalties))
        return solve(self, row_weights, penalties)

    monkeypatch.setattr(logistic.BatchedLogisticSolver, "solve", counting_solve)
    features, labels = _embeddings(200, 24, seed=3)
    fit_linear_head(features, labels, 4)
    assert seen == [len(heads.LOGISTIC_C_GRID), 1]


def test_embeddings_reach_tensorflow_without_a_copy():
    # Large embeddings are used in place: the tensor is the array's memory.
    array = arrays.aligned_empty((6, 3))
    array[:] = 1.0
    tensor = arrays.shared_tensor(array)
    array[0, 0] = 5.0
    assert float(tensor[0, 0]) == 5.0
    # What cannot be shared (another dtype, a misaligned view) is converted.
    for other in (np.ones((2, 2), np.float64), arrays.aligned_empty((9,))[1:]):
        converted = arrays.shared_tensor(other)
        assert converted.dtype.name == "float32" and converted.shape == other.shape


def test_non_finite_embeddings_are_named_before_any_fit():
    # A NaN image in a tf.data input reaches the head as a NaN embedding.
    features, labels = _embeddings(30, 8, seed=4)
    features[7, 2] = np.nan
    features[12, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 example\(s\) are not finite.*first is example 7"):
        fit_linear_head(features, labels, 4)
