"""Domain adaptation blocks and recipe (keras_tl.domain_adaptation, recipes.adapt_domain)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl import domain_adaptation as adapt


def _bn_model(dropout=0.5):
    inputs = keras.Input((4,))
    x = keras.layers.BatchNormalization(name="bn1")(inputs)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(3, name="hidden")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs)


def test_adabn_sets_population_statistics_of_target_data():
    keras.utils.set_random_seed(0)
    model = _bn_model()
    target = np.random.default_rng(0).normal(3.0, 2.0, size=(100, 4)).astype("float32")
    kernel_before = model.get_layer("hidden").get_weights()[0].copy()
    adapt.adabn(model, target, batch_size=16)
    bn1 = model.get_layer("bn1")
    np.testing.assert_allclose(bn1.moving_mean.numpy(), target.mean(0), rtol=1e-4)
    np.testing.assert_allclose(bn1.moving_variance.numpy(), target.var(0), rtol=1e-4)
    # Weights untouched; the layers' own `call` is back.
    np.testing.assert_array_equal(model.get_layer("hidden").get_weights()[0], kernel_before)
    assert "call" not in vars(bn1)
    # The second BatchNorm sees inputs normalized by the first one and no
    # dropout (its input statistics are those of the inference-mode hidden layer).
    hidden = keras.ops.convert_to_numpy(
        keras.Model(model.input, model.get_layer("bn1").output)(target, training=False)
    ) @ kernel_before + model.get_layer("hidden").get_weights()[1]
    np.testing.assert_allclose(
        model.get_layer("bn2").moving_mean.numpy(), hidden.mean(0), rtol=1e-3, atol=1e-4
    )


def test_adabn_reaches_nested_backbones_and_accepts_datasets():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.BatchNormalization(name="inner_bn")(inner_in))
    inner.trainable = False
    outer_in = keras.Input((4,))
    model = keras.Model(outer_in, keras.layers.Dense(2)(inner(outer_in)))
    target = np.full((10, 4), 5.0, "float32")
    dataset = tf.data.Dataset.from_tensor_slices((target, np.zeros(10))).batch(4)
    adapt.adabn(model, dataset)
    np.testing.assert_allclose(inner.get_layer("inner_bn").moving_mean.numpy(), 5.0)


def test_adabn_without_batchnorm_says_what_to_do():
    inputs = keras.Input((2,))
    with pytest.raises(ValueError, match="no BatchNormalization"):
        adapt.adabn(keras.Model(inputs, keras.layers.Dense(1)(inputs)), np.zeros((2, 2)))


def test_coral_loss_zero_for_equal_covariances_and_positive_otherwise():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3)).astype("float32")
    # Shifting the mean leaves the covariance unchanged.
    assert float(adapt.coral_loss(a, a + 7.0)) == pytest.approx(0.0, abs=1e-6)
    b = a * np.array([1.0, 3.0, 0.2], "float32")
    cs, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((cs - cb) ** 2) / (4 * 3**2)
    assert float(adapt.coral_loss(a, b)) == pytest.approx(expected, rel=1e-4)


@pytest.mark.tensorflow_only
def test_gradient_reversal_flips_and_scales_the_gradient():
    layer = adapt.GradientReversal(0.5)
    x = tf.Variable([1.0, -2.0, 3.0])
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [-0.5, -1.0, -1.5])
    restored = adapt.GradientReversal.from_config(layer.get_config())
    assert float(restored.factor.numpy()) == 0.5
    with pytest.raises(ValueError, match=">= 0"):
        adapt.GradientReversal(-1.0)


@pytest.mark.training_path
@pytest.mark.jax_only
def test_gradient_reversal_flips_and_scales_the_gradient_on_jax():
    import jax
    import jax.numpy as jnp

    layer = adapt.GradientReversal(0.5)
    x = jnp.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(x))
    gradient = jax.grad(lambda v: jnp.sum(layer(v) * jnp.array([1.0, 2.0, 3.0])))(x)
    np.testing.assert_allclose(np.asarray(gradient), [-0.5, -1.0, -1.5])


def _small_classifier():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    x = keras.layers.Dense(2, name="logits")(x)
    outputs = keras.layers.Activation("softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="clf")


def _domains(n=32):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    source = rng.uniform(0, 100, size=(n, 8, 8, 1)) + 100 * y[:, None, None, None]
    target = 0.5 * source + 30  # same classes, shifted brightness and contrast
    return source.astype("float32"), y, target.astype("float32")


@pytest.mark.parametrize("method", ["coral", "dann"])
def test_domain_adaptation_model_trains_the_shared_classifier(method):
    classifier = _small_classifier()
    trainer = adapt.DomainAdaptation(classifier, method)
    trainer.compile("adam", "sparse_categorical_crossentropy")
    source, y, target = _domains()
    data = tf.data.Dataset.from_tensor_slices(({"source": source, "target": target}, y)).batch(8)
    before = classifier.get_layer("conv").get_weights()[0].copy()
    callbacks = [adapt.DannSchedule(4, max_factor=0.5)] if method == "dann" else []
    history = trainer.fit(data, epochs=1, verbose=0, callbacks=callbacks)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(classifier.get_layer("conv").get_weights()[0], before)
    if method == "dann":
        assert 0.0 < float(trainer.gradient_reversal.factor.numpy()) <= 0.5
    np.testing.assert_allclose(keras.ops.convert_to_numpy(trainer(source[:2])),
                               keras.ops.convert_to_numpy(classifier(source[:2])))


def test_domain_adaptation_config_round_trip_and_errors():
    classifier = _small_classifier()
    trainer = adapt.DomainAdaptation(classifier, "dann", feature_layer="features")
    clone = adapt.DomainAdaptation.from_config(trainer.get_config())
    assert clone.method == "dann" and clone.feature_dim == 4
    with pytest.raises(ValueError, match="Unknown method"):
        adapt.DomainAdaptation(classifier, "adabn")
    with pytest.raises(ValueError, match="no layer 'pool'"):
        adapt.DomainAdaptation(classifier, "coral", feature_layer="pool")


@pytest.mark.training_path
@pytest.mark.parametrize("method", ["adabn", "coral", "dann"])
def test_adapt_domain_recipe(method):
    from keras_tl.recipes import adapt_domain

    classifier = _small_classifier()
    source, y, target = _domains()
    bn = classifier.get_layer("bn")
    adapted = adapt_domain(
        classifier, (source, y), target, method=method, epochs=1, batch_size=8,
        validation_data=(target, y), verbose=0,
    )
    assert adapted is classifier
    # Every method ends with the BatchNorm statistics of the target images.
    conv = keras.Model(classifier.input, classifier.get_layer("conv").output)
    activations = keras.ops.convert_to_numpy(conv(target, training=False))
    np.testing.assert_allclose(
        bn.moving_mean.numpy(), activations.mean((0, 1, 2)), rtol=1e-3, atol=1e-4
    )
    if method != "adabn":
        assert "target_accuracy" in adapted.history.history


def test_adapt_domain_keeps_batchnorm_copies_equal_across_replicas(two_cpu_strategy):
    from keras_tl.recipes import adapt_domain

    source, y, target = _domains()
    with two_cpu_strategy.scope():
        classifier = _small_classifier()
        adapt_domain(classifier, (source, y), target, method="coral", epochs=1, batch_size=8,
                     recalibrate_batchnorm=False, verbose=0)
    for variable in (classifier.get_layer("bn").moving_mean,
                     classifier.get_layer("bn").moving_variance):
        copies = [c.numpy() for c in variable.value.values]
        assert len(copies) == 2
        np.testing.assert_array_equal(copies[0], copies[1])


def test_adapt_domain_rejects_unknown_method():
    from keras_tl.recipes import adapt_domain

    with pytest.raises(ValueError, match="Unknown method"):
        adapt_domain(_small_classifier(), None, np.zeros((2, 8, 8, 1)), method="mmd")


@pytest.mark.training_path
@pytest.mark.parametrize("method", ["coral", "dann"])
def test_adapt_domain_adapts_a_model_a_recipe_returned(method):
    # The recipe's head was built on its own Input first: its layers have
    # two inbound nodes, and the features must be found in the model's graph.
    from keras_tl.recipes import adapt_domain
    from keras_tl.recipes import feature_extraction

    source, y, target = _domains()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    backbone = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="tiny")
    model = feature_extraction(backbone, (source, y), num_classes=2, epochs=1,
                               batch_size=8, verbose=0)
    before = model.predict(target, verbose=0)
    adapted = adapt_domain(model, (source, y), target, method=method, epochs=1,
                           batch_size=8, verbose=0)
    assert adapted is model
    assert np.isfinite(adapted.history.history["loss"][0])
    assert not np.allclose(adapted.predict(target, verbose=0), before)
