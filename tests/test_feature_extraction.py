import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_tl
from keras_tl.examples.datasets import few_shot_split
from keras_tl.features import extract
from keras_tl.recipes import feature_extraction


def _backbone(cnn):
    """The trained CNN up to its pooled features, as a copy: recipes freeze
    the backbone they get, and the session fixture must stay as it is."""
    copy = keras.models.clone_model(cnn)
    copy.set_weights(cnn.get_weights())
    return keras.Model(copy.input, copy.get_layer("avg_pool").output, name="digits_backbone")


@pytest.mark.training_path
def test_fast_path_predicts_as_head_of_backbone_and_reloads(mnist_cnn_small, digits_target, tmp_path):
    x, y = digits_target
    (xs, ys), (xt, yt) = few_shot_split(x, y, 5, seed=0)
    backbone = _backbone(mnist_cnn_small)
    names = [f"digit_{i}" for i in range(10)]
    model = feature_extraction(backbone, (xs, ys), class_names=names, verbose=0)

    # End-to-end model == head(backbone(x)), computed separately.
    features, _ = extract(backbone, xt[:64])
    head_layers = [model.get_layer(n) for n in ("normalize", "logits", "probabilities")]
    expected = features
    for layer in head_layers:
        expected = layer(expected)
    got = model.predict(xt[:64], verbose=0)
    assert np.abs(got - keras.ops.convert_to_numpy(expected)).max() < 1e-5

    # The backbone stayed frozen and the head learned something real.
    assert all(not w.trainable for w in backbone.weights)
    accuracy = (model.predict(xt, verbose=0).argmax(-1) == yt).mean()
    assert accuracy > 0.5  # 10 classes: chance is 0.1
    assert model.history.history["accuracy"][0] > 0.9

    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(xt[:64], verbose=0), got, atol=1e-6)
    assert keras_tl.get_class_names(reloaded) == names


@pytest.mark.slow
def test_cached_head_beats_naive_dense_head(mnist_cnn_small, digits_target):
    x, y = digits_target
    (xs, ys), (xt, yt) = few_shot_split(x, y, 2, seed=1)
    backbone = _backbone(mnist_cnn_small)
    model = feature_extraction(backbone, (xs, ys), num_classes=10, verbose=0)
    ours = (model.predict(xt, verbose=0).argmax(-1) == yt).mean()

    keras.utils.set_random_seed(1)
    naive = keras.Sequential([backbone, keras.layers.Dense(10, activation="softmax")])
    naive.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy")
    naive.fit(xs, ys, epochs=40, verbose=0)
    baseline = (naive.predict(xt, verbose=0).argmax(-1) == yt).mean()
    assert ours > baseline


def test_extract_cache_on_disk(mnist_cnn_small, digits_target, tmp_path):
    x, y = digits_target
    backbone = _backbone(mnist_cnn_small)
    path = str(tmp_path / "train.npy")
    first, labels = extract(backbone, (x[:100], y[:100]), cache_path=path)
    assert first.shape == (100, backbone.output.shape[-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.labels.npy", "train.npy"]
    # Written batch by batch (two of 64: the file is cut to the 100 rows).
    in_memory, _ = extract(backbone, (x[:100], y[:100]))
    np.testing.assert_allclose(np.asarray(first), in_memory, atol=1e-5)
    second, labels2 = extract(backbone, (x[:100], y[:100]), cache_path=path)
    np.testing.assert_array_equal(np.asarray(second), first)
    np.testing.assert_array_equal(labels2, labels)
    # Both calls hand back the file itself, memory-mapped, not a copy in
    # memory; writes to it stay private and never reach the cache.
    for embeddings in (first, second):
        assert isinstance(embeddings, np.memmap) and embeddings.mode == "c"
    second[0] = -1.0
    np.testing.assert_array_equal(np.load(path)[0], np.asarray(first)[0])


@pytest.mark.training_path
def test_augmented_path_trains_in_loop_with_backbone_frozen(mnist_cnn_small, digits_target):
    x, y = digits_target
    (xs, ys), _ = few_shot_split(x, y, 3, seed=0)
    backbone = _backbone(mnist_cnn_small)
    before = [w.numpy().copy() for w in backbone.weights]
    augmentation = keras.layers.RandomTranslation(0.1, 0.1, seed=0)
    model = feature_extraction(backbone, (xs, ys), augmentation=augmentation,
                               epochs=2, verbose=0)
    assert len(model.history.history["loss"]) == 2
    for w, b in zip(backbone.weights, before):  # BN moving stats included
        np.testing.assert_array_equal(w.numpy(), b)


@pytest.mark.slow
def test_zoo_name_folder_input(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("healthy", "rust"):
        (tmp_path / name).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / name / f"{i}.png")
    model = feature_extraction("resnet50", str(tmp_path), weights=None,
                               input_shape=(32, 32, 3), verbose=0)
    assert model.input.shape[1:] == (32, 32, 3)
    assert keras_tl.get_class_names(model) == ["healthy", "rust"]
    assert model.predict(np.zeros((2, 32, 32, 3)), verbose=0).shape == (2, 2)


@pytest.mark.slow
def test_feature_extraction_under_mirrored_strategy(two_cpu_strategy, digits_target):
    strategy = two_cpu_strategy
    assert strategy.num_replicas_in_sync == 2
    x, y = digits_target
    (xs, ys), (xt, yt) = few_shot_split(x, y, 3, seed=0)
    with strategy.scope():
        cnn = keras_tl.build_small_cnn((28, 28, 1), 10, width=8)
        backbone = keras.Model(cnn.input, cnn.get_layer("avg_pool").output)
    model = feature_extraction(
        backbone, (xs, ys), augmentation=keras.layers.RandomTranslation(0.05, 0.05),
        epochs=1, strategy=strategy, verbose=0,
    )
    kernel = model.get_layer("logits").kernel
    assert isinstance(kernel.value, tf.distribute.DistributedValues)
    assert len(model.history.history["loss"]) == 1
    assert model.predict(xt[:8], verbose=0).shape == (8, 10)


def test_extract_keeps_labels_aligned_with_a_reshuffling_dataset(mnist_cnn_small, digits_target):
    x, _ = digits_target
    x = x[:40]
    ids = np.arange(40)  # one label per image: alignment is checkable
    backbone = _backbone(mnist_cnn_small)
    ds = (tf.data.Dataset.from_tensor_slices((x, ids))
          .shuffle(40, reshuffle_each_iteration=True).batch(8))
    features, labels = extract(backbone, ds)
    expected = backbone.predict(x[labels], verbose=0)
    np.testing.assert_allclose(features, expected, atol=1e-5)


def test_saved_fast_path_model_evaluates_after_loading(tmp_path):
    """`load_model(path).evaluate(x, y)` needs the model saved compiled."""
    from keras_tl.backbones import build_small_cnn

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (24, 28, 28, 1)).astype("float32")
    y = np.arange(24) % 3
    cnn = build_small_cnn(width=8)
    backbone = keras.Model(cnn.input, cnn.get_layer("features").output)
    model = feature_extraction(backbone, (x, y), num_classes=3, verbose=0)
    history = model.history.history
    assert model.history.history["accuracy"]  # the recipe's history survives compiling

    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    loss, accuracy = reloaded.evaluate(x, y, verbose=0)
    expected = (model.predict(x, verbose=0).argmax(-1) == y).mean()
    assert np.isfinite(loss)
    assert accuracy == pytest.approx(expected, abs=1e-6)
    assert history is model.history.history
