"""Transferability scores and backbone ranking (keras_tl.select)."""

import keras
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from keras_tl import select


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


def test_rank_backbones_resizes_and_converts_channels():
    x, y = _tiny_data(n=20)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    rgb = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs), name="rgb16")
    ranking = select.rank_backbones([rgb], (x, y), verbose=0)
    assert ranking.best.input_shape == (16, 16, 3)
    assert np.isfinite(ranking.best.score)


def test_rank_backbones_zoo_name_and_leep(capsys):
    x, y = _tiny_data(n=16)
    x = np.repeat(np.repeat(x, 4, axis=1), 4, axis=2)  # 32x32
    ranking = select.rank_backbones(
        ["mobilenet_v3_small"], (x, y), weights=None, verbose=0
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
    assert scores.best.score <= 0.0
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
