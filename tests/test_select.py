"""Transferability scores and backbone ranking (keras_tl.selection)."""

import keras
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from keras_tl import selection as select


def _gaussian_evidence(features, y, alpha, beta):
    """log p(y | F, alpha, beta) / n computed directly: y ~ N(0, I/beta + F F^T/alpha)."""
    n = len(y)
    covariance = np.eye(n) / beta + features @ features.T / alpha
    return multivariate_normal(np.zeros(n), covariance).logpdf(y) / n


@pytest.mark.parametrize("n, dim", [(40, 5), (12, 30)])
def test_log_me_evidence_matches_closed_form_gaussian(n, dim):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, dim))
    y = (features[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.float64)
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    evidence, alpha, beta = select._log_me_target(u, s, y, dim)
    assert evidence == pytest.approx(_gaussian_evidence(features, y, alpha, beta), rel=1e-6)
    # The fixed point maximizes the evidence over (alpha, beta).
    for da, db in [(1.5, 1.0), (1 / 1.5, 1.0), (1.0, 1.5), (1.0, 1 / 1.5)]:
        assert evidence > _gaussian_evidence(features, y, alpha * da, beta * db)


def test_log_me_prefers_informative_features():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=300)
    centers = rng.normal(size=(3, 16)) * 3
    informative = centers[labels] + rng.normal(size=(300, 16))
    noise = rng.normal(size=(300, 16))
    assert select.log_me(informative, labels) > select.log_me(noise, labels) + 0.2


def test_normalize_features_centers_and_scales_rows():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(50, 8)) + 5.0
    z = select.normalize_features(features)
    # Rows have unit norm; before the row scaling the mean was removed.
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-9)
    centered = features - features.mean(0)
    np.testing.assert_allclose(z, centered / np.linalg.norm(centered, axis=1, keepdims=True))
    np.testing.assert_allclose(
        np.linalg.norm(select.normalize_features(features, "l2"), axis=1), 1.0)
    np.testing.assert_array_equal(select.normalize_features(features, None), features)
    with pytest.raises(ValueError, match="Unknown normalization 'zca'"):
        select.normalize_features(features, "zca")


def test_centered_log_me_ignores_shared_offset_and_scale():
    """Raw LogME changes when every embedding moves by one offset or is
    rescaled (its linear model has no intercept); the centered, normalized
    score does not, so backbones with different output scales compare."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=200)
    features = rng.normal(size=(3, 12))[labels] + rng.normal(size=(200, 12))
    moved = 40.0 * features + 25.0
    raw, raw_moved = select.log_me(features, labels), select.log_me(moved, labels)
    assert abs(raw - raw_moved) > 0.05
    normalized = select.log_me(select.normalize_features(features), labels)
    assert select.log_me(select.normalize_features(moved), labels) == pytest.approx(
        normalized, rel=1e-9)


def test_log_me_of_constant_features_is_the_noise_only_evidence():
    """Features that never vary explain nothing: after centering they are
    zeros, and the score is that of labels explained by noise alone, below
    any informative features (not NaN, which would sort anywhere)."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, size=60)
    flat = select.normalize_features(np.ones((60, 4)))
    score = select.log_me(flat, labels)
    # One float target column: the evidence of y ~ N(0, I / beta) at the
    # best beta = n / ||y||^2, per example.
    target = np.eye(2)[labels][:, :1]
    beta = 60 / float(target[:, 0] @ target[:, 0])
    noise_only = 0.5 * np.log(beta) - 0.5 - 0.5 * np.log(2 * np.pi)
    assert np.isfinite(score)
    assert select.log_me(flat, target) == pytest.approx(noise_only)
    informative = select.normalize_features(labels[:, None] + 0.3 * rng.normal(size=(60, 4)))
    assert select.log_me(informative, labels) > score + 0.1


def test_log_me_rejects_bad_input():
    with pytest.raises(ValueError, match="single class"):
        select.log_me(np.ones((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="one label per example"):
        select.log_me(np.ones((4, 2)), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="NaN"):
        select.log_me(np.full((4, 2), np.nan), np.array([0, 1, 0, 1]))


def test_leep_and_nce_closed_forms():
    labels = np.array([0, 1, 2, 0, 1, 2])
    # A source classifier whose (one-hot) prediction determines the label:
    # P(y|z) is one-hot, so both scores reach their maximum 0.
    perfect = np.eye(3)[(labels + 1) % 3]
    assert select.leep(perfect, labels) == pytest.approx(0.0, abs=1e-9)
    assert select.nce(perfect, labels) == pytest.approx(0.0, abs=1e-9)
    # A constant prediction carries no information: LEEP and NCE equal
    # -H(Y) = -log 3 for balanced labels.
    constant = np.tile([0.5, 0.5], (6, 1))
    assert select.leep(constant, labels) == pytest.approx(-np.log(3))
    assert select.nce(np.zeros(6, int), labels) == pytest.approx(-np.log(3))


def test_leep_softmaxes_logits():
    labels = np.array([0, 1, 0, 1])
    logits = np.array([[5.0, -5.0], [-5.0, 5.0], [4.0, -4.0], [-4.0, 4.0]])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert select.leep(logits, labels) == pytest.approx(select.leep(probs, labels))


def _tiny_extractor(seed, informative, name):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    if not informative:
        # Features unrelated to the image: constant plus noise-free junk.
        x = keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer="ones")(x)
    return keras.Model(inputs, x, name=name)


def _tiny_data(seed=0, n=60):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.uniform(0, 40, size=(n, 8, 8, 1))
    x[y == 1, :4] += 150  # class 1: bright upper half
    return x.astype("float32"), y.astype("int32")


@pytest.mark.training_path
def test_rank_backbones_orders_candidates_and_prints_table(tmp_path, capsys):
    x, y = _tiny_data()
    good = _tiny_extractor(0, True, "pixels")
    bad = _tiny_extractor(0, False, "constant")
    ranking = select.rank_backbones([bad, good], (x, y), cache_dir=tmp_path, verbose=1)
    assert ranking.names() == ["pixels", "constant"]
    assert ranking.best.candidate is good
    assert ranking.best.params == 0 and ranking[1].params == 4 * 64 + 4
    assert ranking.best.input_shape == (8, 8, 1)
    table = capsys.readouterr().out
    assert "pixels" in table and "latency ms" in table
    # The embeddings went through the feature-extraction cache.
    assert (tmp_path / "pixels_logme.npy").exists()
    again = select.rank_backbones({"pixels": good}, (x, y), cache_dir=tmp_path, verbose=0)
    assert again.best.score == pytest.approx(ranking.best.score)
    # The score is LogME of the centered, L2-normalized cached embeddings;
    # normalization=None scores the raw ones.
    cached = np.load(tmp_path / "pixels_logme.npy")
    assert again.best.score == pytest.approx(
        select.log_me(select.normalize_features(cached), y))
    raw = select.rank_backbones({"pixels": good}, (x, y), normalization=None, verbose=0)
    assert raw.best.score == pytest.approx(select.log_me(cached, y))
    with pytest.raises(ValueError, match="Unknown normalization"):
        select.rank_backbones([good], (x, y), normalization="whiten", verbose=0)


def test_rank_backbones_resizes_and_converts_channels():
    x, y = _tiny_data(n=20)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    rgb = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs), name="rgb16")
    ranking = select.rank_backbones([rgb], (x, y), verbose=0)
    assert ranking.best.input_shape == (16, 16, 3)
    assert np.isfinite(ranking.best.score)


@pytest.mark.slow
def test_rank_backbones_zoo_name_and_leep(capsys):
    x, y = _tiny_data(n=16)
    x = np.repeat(np.repeat(x, 4, axis=1), 4, axis=2)  # 32x32
    ranking = select.rank_backbones(
        ["mobilenet"], (x, y), weights=None, verbose=0
    )
    assert ranking.best.input_shape == (32, 32, 3)
    inputs = keras.Input((32, 32, 1))
    pooled = keras.layers.AveragePooling2D(4)(inputs)
    source = keras.Model(
        inputs,
        keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(pooled)),
        name="source",
    )
    scores = select.rank_backbones([source], (x, y), metric="leep", verbose=0)
    # LEEP is a mean log-likelihood: at most 0, up to float rounding.
    assert scores.best.score <= 1e-9
    with pytest.raises(ValueError, match="source classifier"):
        select.rank_backbones([keras.Model(inputs, pooled)], (x, y), metric="nce")
    with pytest.raises(ValueError, match="Unknown metric"):
        select.rank_backbones([source], (x, y), metric="accuracy")


def test_recommend_backbone_respects_limits():
    rows = [
        select.BackboneScore("big", 2.0, "logme", 10_000_000, (224, 224, 3), 1.0, 50.0),
        select.BackboneScore("small", 1.0, "logme", 1_000_000, (224, 224, 3), 1.0, 5.0),
    ]
    ranking = select.BackboneRanking(rows)
    assert select.recommend_backbone(ranking).name == "big"
    assert select.recommend_backbone(ranking, max_params=2_000_000).name == "small"
    assert select.recommend_backbone(ranking, max_latency_ms=10).name == "small"
    with pytest.raises(ValueError, match="No candidate fits"):
        select.recommend_backbone(ranking, max_params=10)
    with pytest.raises(ValueError, match="needs train_data"):
        select.recommend_backbone(["mobilenet_v2"])


@pytest.mark.slow
def test_log_me_ranks_a_transferred_cnn_above_a_random_one(mnist_cnn_small, digits_target):
    """On real digits, the CNN pretrained on MNIST scores above the same
    architecture with random weights, in the order their feature-extraction
    accuracies take."""
    import keras

    from keras_tl.backbones import build_small_cnn
    from keras_tl.examples.datasets import few_shot_split
    from keras_tl.recipes import feature_extraction

    x, y = digits_target
    (x_train, y_train), (x_test, y_test) = few_shot_split(x, y, 10, seed=0)
    keras.utils.set_random_seed(0)
    random_cnn = build_small_cnn((28, 28, 1), 10, width=16, name="random_cnn")
    # A copy: feature extraction freezes the layers of the backbone it gets,
    # and the trained CNN is shared with other tests.
    pretrained = keras.models.clone_model(mnist_cnn_small)
    pretrained.set_weights(mnist_cnn_small.get_weights())
    candidates = {
        name: keras.Model(model.input, model.get_layer("avg_pool").output, name=name)
        for name, model in [("pretrained", pretrained), ("random", random_cnn)]
    }
    ranking = select.rank_backbones(candidates, (x_train, y_train), verbose=0)
    accuracy = {}
    for name, backbone in candidates.items():
        model = feature_extraction(backbone, (x_train, y_train), verbose=0)
        probs = model.predict(x_test[:400], verbose=0)
        accuracy[name] = float((probs.argmax(-1) == y_test[:400]).mean())
    assert ranking.names() == ["pretrained", "random"]
    assert accuracy["pretrained"] > accuracy["random"]
