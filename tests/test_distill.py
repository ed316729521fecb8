"""Tests of keras_tl.distillation and the distill recipe."""

import importlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras

import keras_tl
from keras_tl.backbones import build_small_cnn
from keras_tl.callbacks import SyncBatchNormStatistics
from keras_tl.distillation import Distiller
from keras_tl.distillation import SoftTargetDistillation
from keras_tl.distillation import shrink_bert
from keras_tl.distillation import soft_target_loss
from keras_tl.recipes import distill

NUM_CLASSES = 4


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _kd_numpy(t, s, temperature, standardize=False):
    if standardize:
        t = (t - t.mean(-1, keepdims=True)) / (t.std(-1, keepdims=True) + 1e-6)
        s = (s - s.mean(-1, keepdims=True)) / (s.std(-1, keepdims=True) + 1e-6)
    p = _softmax(t / temperature)
    kl = (p * (_log_softmax(t / temperature) - _log_softmax(s / temperature))).sum(-1)
    return kl * temperature**2


def _dense_model(name, seed, hidden=8, activation=None, dropout=0.0):
    rng = np.random.default_rng(seed)
    inputs = keras.Input((5,), name="x")
    h = keras.layers.Dense(hidden, activation="relu", name="features")(inputs)
    if dropout:
        h = keras.layers.Dropout(dropout)(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(h)
    outputs = keras.layers.Activation(activation, name="probabilities")(logits) if activation else logits
    model = keras.Model(inputs, outputs, name=name)
    model.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5 for w in model.weights[:4]]
                      + [w.numpy() for w in model.weights[4:8]]
                      + [rng.normal(size=w.shape).astype("float32") for w in model.weights[8:]])
    return model


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, n).astype("int32")
    return x, y


def _logits_of(model, x):
    return keras.Model(model.inputs, model.get_layer("logits").output).predict(x, verbose=0)


@pytest.mark.backend_independent
@pytest.mark.slow
def test_keras_tl_distill_is_the_recipe_and_the_old_module_path_still_imports():
    # `keras_tl.distill` is the recipe, as every recipe is importable from
    # `keras_tl`; the 0.3 module path `keras_tl.distill` still imports its
    # names, with one warning, without replacing the function. A fresh
    # interpreter, since this one may have used the alias already.
    code = (
        "import warnings\n"
        "import keras_tl\n"
        "assert keras_tl.distill is keras_tl.recipes.distill\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from keras_tl.distill import Distiller\n"
        "    from keras_tl.distill import shrink_bert\n"
        "messages = [str(w.message) for w in caught if w.category is DeprecationWarning]\n"
        "assert messages == ['keras_tl.distill moved to keras_tl.distillation'], messages\n"
        "assert Distiller is keras_tl.Distiller\n"
        "assert callable(keras_tl.distill) and keras_tl.distill.__name__ == 'distill'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_soft_target_loss_matches_formula_with_t_squared():
    t = np.array([[2.0, 0.5, -1.0], [10.0, -3.0, 1.0]], np.float32)
    s = np.array([[0.1, 0.3, -0.2], [0.0, 1.0, 2.0]], np.float32)
    for temperature in (1.0, 4.0):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(soft_target_loss(t, s, temperature)), _kd_numpy(t, s, temperature), rtol=1e-5
        )
    # T^2 factor: the first pair's KL at T=4 is 0.03875, times 16.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(soft_target_loss(t[:1], s[:1], 4.0)), [0.620057], rtol=1e-5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(soft_target_loss(t, s, 2.0, standardize=True)),
        _kd_numpy(t, s, 2.0, standardize=True), rtol=1e-4,
    )
    # Standardized loss ignores the teacher's logit scale and offset.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(soft_target_loss(t * 7 + 3, s, 2.0, standardize=True)),
        keras.ops.convert_to_numpy(soft_target_loss(t, s, 2.0, standardize=True)), rtol=1e-4,
    )


@pytest.mark.training_path
@pytest.mark.parametrize("standardize", [False, True])
def test_distiller_loss_equals_formula(standardize):
    teacher = _dense_model("teacher", 1, activation="softmax")
    student = _dense_model("student", 2, hidden=3, activation="softmax")
    x, y = _data(16)
    alpha, temperature = 0.3, 3.0
    distiller = Distiller(student=student, teacher=teacher, standardize=standardize)
    distiller.compile(optimizer="adam", alpha=alpha, temperature=temperature)
    loss = float(distiller.compute_loss(x, y, training=False))

    t, s = _logits_of(teacher, x), _logits_of(student, x)
    ce = -_log_softmax(s)[np.arange(len(y)), y].mean()
    kd = _kd_numpy(t, s, temperature, standardize).mean()
    np.testing.assert_allclose(loss, alpha * ce + (1 - alpha) * kd, rtol=1e-4)
    # Same value with the Keras example's distillation_loss_fn.
    distiller.compile(optimizer="adam", alpha=alpha, temperature=temperature,
                      distillation_loss_fn=keras.losses.KLDivergence())
    np.testing.assert_allclose(float(distiller.compute_loss(x, y, training=False)), loss, rtol=1e-3)


def test_softmax_outputs_are_traced_back_to_logits():
    x, _ = _data(8)
    # Dense(activation="softmax") as the last layer: pre-activation recomputed.
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(6, activation="relu")(inputs)
    dense = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="head")
    teacher = keras.Model(inputs, dense(hidden))
    student = _dense_model("student", 3)
    d = Distiller(student=student, teacher=teacher)
    kernel, bias = dense.get_weights()
    hidden_values = keras.Model(inputs, hidden).predict(x, verbose=0)
    np.testing.assert_allclose(
        d.teacher_logits(x)["logits"], hidden_values @ kernel + bias, rtol=1e-4, atol=1e-5
    )
    # Softmax inside a nested model: log-probabilities, equal to the logits
    # up to a per-example shift.
    inner = _dense_model("inner", 4, activation="softmax")
    nested = keras.Sequential([keras.Input((5,)), inner], name="nested")
    d = Distiller(student=student, teacher=nested)
    got = d.teacher_logits(x)["logits"]
    want = _logits_of(inner, x)
    np.testing.assert_allclose(got - got.mean(-1, keepdims=True),
                               want - want.mean(-1, keepdims=True), rtol=1e-4, atol=1e-4)


def test_keras_tl_heads_give_log_probabilities_not_probabilities():
    """A model ending in a nested keras-tl head (softmax, then the
    pass-through ClassNames layer), as the text classifier does: its output
    is probabilities, and the loss must use their logarithm."""
    from keras_tl.heads import build_head

    def headed(name, seed, hidden):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((5,))
        features = keras.layers.Dense(hidden, activation="relu")(inputs)
        return keras.Model(inputs, build_head(hidden, NUM_CLASSES)(features), name=name)

    teacher, student = headed("teacher", 1, 8), headed("student", 2, 3)
    x, y = _data(16)
    alpha, temperature = 0.3, 3.0
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", alpha=alpha, temperature=temperature)
    loss = float(distiller.compute_loss(x, y, training=False))
    t = np.log(teacher.predict(x, verbose=0))
    s = np.log(student.predict(x, verbose=0))
    ce = -_log_softmax(s)[np.arange(len(y)), y].mean()
    kd = _kd_numpy(t, s, temperature, standardize=True).mean()
    np.testing.assert_allclose(loss, alpha * ce + (1 - alpha) * kd, rtol=1e-4)


@pytest.mark.slow
def test_fit_keeps_teacher_weights_and_trains_student():
    teacher = _dense_model("teacher", 1, activation="softmax", dropout=0.3)
    student = _dense_model("student", 2, hidden=3, activation="softmax")
    x, y = _data(64)
    before = [w.numpy().copy() for w in teacher.weights]
    student_before = [w.numpy().copy() for w in student.trainable_weights]
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    history = distiller.fit(x, y, epochs=2, batch_size=16, verbose=0,
                            validation_data=(x, y))
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, teacher.weights))
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(student_before, student.trainable_weights))
    for key in ("loss", "accuracy", "student_loss", "distillation_loss", "val_accuracy"):
        assert np.all(np.isfinite(history.history[key])), key
    # predict and evaluate are the student's.
    np.testing.assert_allclose(distiller.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-5)
    student.compile(metrics=["accuracy"], loss="sparse_categorical_crossentropy")
    expected = student.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    assert distiller.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] == pytest.approx(expected)


def test_cached_and_online_teacher_give_the_same_loss():
    teacher = _dense_model("teacher", 1, activation="softmax")
    student = _dense_model("student", 2, hidden=3, activation="softmax")
    x, y = _data(24)
    distiller = Distiller(student=student, teacher=teacher, hint_layers=("features", "features"))
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    online = float(distiller.compute_loss(x, y, training=False))
    cached_ds = distiller.cache_teacher_logits((x, y), batch_size=24, shuffle=False)
    xb, targets = next(iter(cached_ds))
    assert set(targets) == {"labels", "teacher_logits", "teacher_hint"}
    cached = float(distiller.compute_loss(xb, targets, training=False))
    assert cached == pytest.approx(online, rel=1e-5)
    # Whole-epoch evaluation agrees too, and fit on the cache trains.
    online_eval = distiller.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    cached_eval = distiller.evaluate(
        distiller.cache_teacher_logits(tf.data.Dataset.from_tensor_slices((x, y)).batch(8),
                                       batch_size=8, shuffle=False),
        verbose=0, return_dict=True)
    assert cached_eval["loss"] == pytest.approx(online_eval["loss"], rel=1e-5)
    history = distiller.fit(distiller.cache_teacher_logits((x, y), 8, seed=0), epochs=1, verbose=0)
    assert np.isfinite(history.history["hint_loss"][0])


@pytest.mark.training_path
@pytest.mark.slow
def test_save_and_load_round_trip(tmp_path):
    teacher = build_small_cnn((12, 12, 1), NUM_CLASSES, width=4, name="teacher")
    student = build_small_cnn((12, 12, 1), NUM_CLASSES, width=2, name="student")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (16, 12, 12, 1)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, 16)
    distiller = Distiller(student=student, teacher=teacher, temperature=2.5, alpha=0.2,
                          hint_layers=("features", "features"), hint_weight=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    distiller.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, Distiller)
    assert (loaded.temperature, loaded.alpha, loaded.standardize) == (2.5, 0.2, True)
    assert loaded.compiled and int(loaded.optimizer.iterations) == int(distiller.optimizer.iterations)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), rtol=1e-5)
    np.testing.assert_allclose(loaded.hint_projection.get_weights()[0],
                               distiller.hint_projection.get_weights()[0])
    assert float(loaded.compute_loss(x, y, training=False)) == pytest.approx(
        float(distiller.compute_loss(x, y, training=False)), rel=1e-5)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    # The student alone also saves as a plain Keras model.
    distiller.student.save(tmp_path / "student.keras")
    keras.models.load_model(tmp_path / "student.keras", safe_mode=True)


def test_bad_settings_get_clear_errors():
    teacher = _dense_model("teacher", 1)
    student = _dense_model("student", 2)
    with pytest.raises(ValueError, match="alpha must be in \\[0, 1\\]"):
        Distiller(student=student, teacher=teacher, alpha=1.5)
    with pytest.raises(ValueError, match="alpha must be in \\[0, 1\\]"):
        Distiller(student=student, teacher=teacher, alpha=-0.1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Distiller(student=student, teacher=teacher, temperature=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Distiller(student=student, teacher=teacher, temperature=-2.0)
    distiller = Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="alpha must be in"):
        distiller.compile(optimizer="adam", alpha=2.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        distiller.compile(optimizer="adam", temperature=0.0)
    inputs = keras.Input((5,))
    three_classes = keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs))
    with pytest.raises(ValueError, match="(?i)teacher.*student"):
        Distiller(student=three_classes, teacher=teacher)
    with pytest.raises(ValueError, match="no layer"):
        Distiller(student=student, teacher=teacher, teacher_logits_layer="nope")
    with pytest.raises(ValueError, match="must be a keras.Model"):
        Distiller(student="small", teacher=teacher)


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpus(two_cpu_strategy):
    strategy = two_cpu_strategy
    assert strategy.num_replicas_in_sync == 2
    x, y = _data(32)
    with strategy.scope():
        teacher = _dense_model("teacher", 1, activation="softmax")
        student = _dense_model("student", 2, hidden=3, activation="softmax")
        distiller = Distiller(student=student, teacher=teacher)
        distiller.compile(optimizer="adam", metrics=["accuracy"])
    reference = float(distiller.compute_loss(x, y, training=False))
    before = [w.numpy().copy() for w in teacher.weights]
    sync = [SyncBatchNormStatistics()]
    history = distiller.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=sync)
    history = distiller.fit(distiller.cache_teacher_logits((x, y), 16), epochs=1, verbose=0,
                            callbacks=sync)
    assert np.isfinite(history.history["loss"][0])
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, teacher.weights))
    # The loss reported across replicas is the single-device loss: with the
    # student's BatchNorm statistics equal on both replicas, both see the
    # same student.
    evaluated = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["loss"]
    distiller_ref = float(distiller.compute_loss(x, y, training=False))
    assert evaluated == pytest.approx(distiller_ref, rel=1e-5)
    assert reference > 0


@pytest.mark.slow
def test_recipe_with_zoo_student_and_augmentation():
    teacher = build_small_cnn((32, 32, 3), 3, width=4, name="teacher")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (24, 32, 32, 3)).astype("uint8")
    y = np.arange(24) % 3
    student = distill(teacher, "mobilenet", (x, y), (x[:6], y[:6]),
                      student_weights=None, epochs=1, batch_size=8, verbose=0)
    assert student.output_shape == (None, 3)
    assert "val_accuracy" in student.history.history
    flip = keras.layers.RandomFlip("horizontal", seed=0)
    small = build_small_cnn((32, 32, 3), 3, width=2, name="student")
    student = distill(teacher, small, (x, y), epochs=1, batch_size=8, augmentation=flip, verbose=0)
    assert student is small


def test_recipe_learning_rate_warms_up_then_decays_to_zero():
    from keras_tl.recipes.distillation import _learning_rate

    train = tf.data.Dataset.range(10).batch(2)  # 5 steps per epoch
    rate = _learning_rate(3e-3, 0.1, train, epochs=4)  # 20 steps, 2 of warm-up
    values = [float(rate(step)) for step in range(21)]
    assert values[0] == 0.0 and values[1] == pytest.approx(1.5e-3)
    assert values[2] == pytest.approx(3e-3)
    assert all(a >= b for a, b in zip(values[2:], values[3:]))
    assert values[20] == pytest.approx(0.0, abs=1e-9)
    custom = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.5)
    assert _learning_rate(custom, 0.1, train, epochs=4) is custom
    # No length to plan a schedule over: the peak rate, constant.
    assert _learning_rate(3e-3, 0.1, train.repeat(), epochs=4) == 3e-3

    teacher = build_small_cnn((8, 8, 1), 2, width=2, name="teacher")
    x, y = np.zeros((4, 8, 8, 1), "float32"), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="warmup_fraction"):
        distill(teacher, build_small_cnn((8, 8, 1), 2, width=1), (x, y), warmup_fraction=1.0,
                verbose=0)


@pytest.mark.slow
def test_shrink_bert_and_distill_text():
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=40, num_layers=4, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=8,
    )
    teacher = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    student = shrink_bert(teacher)
    assert student.backbone.num_layers == 2
    for i, j in enumerate([0, 2]):
        for a, b in zip(student.backbone.get_layer(f"transformer_layer_{i}").weights,
                        backbone.get_layer(f"transformer_layer_{j}").weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    for name in ("token_embedding", "embeddings_layer_norm", "pooled_dense"):
        for a, b in zip(student.backbone.get_layer(name).weights, backbone.get_layer(name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(student.get_layer("logits").get_weights()[0],
                                  teacher.get_layer("logits").get_weights()[0])
    assert student.count_params() < teacher.count_params()
    # A frozen teacher (as a Distiller leaves it) still gives a trainable student.
    teacher.trainable = False
    assert len(shrink_bert(teacher).trainable_weights) == len(student.trainable_weights) > 0
    teacher.trainable = True
    assert shrink_bert(backbone, layer_indices=[1, 3]).num_layers == 2
    with pytest.raises(ValueError, match="layer_indices"):
        shrink_bert(backbone, layer_indices=[0, 7])

    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, 40, (16, 8)).astype("int32"),
        "segment_ids": np.zeros((16, 8), "int32"),
        "padding_mask": np.ones((16, 8), "int32"),
    }
    y = rng.integers(0, 2, 16)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    online = float(distiller.compute_loss(x, y, training=False))
    cached = distiller.cache_teacher_logits((x, y), batch_size=16, shuffle=False)
    xb, targets = next(iter(cached))
    assert float(distiller.compute_loss(xb, targets, training=False)) == pytest.approx(online, rel=1e-5)
    history = distiller.fit(cached, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])

    # keras-tl's own text classifier (mean pooling, nested head ending in
    # softmax): shrunk the same way, distilled on log-probabilities.
    from keras_tl.text import PooledTextClassifier

    pooled = PooledTextClassifier(backbone, 2, preprocessor=None)
    pooled_student = shrink_bert(pooled)
    assert isinstance(pooled_student, PooledTextClassifier)
    assert pooled_student.backbone.num_layers == 2
    distiller = Distiller(student=pooled_student, teacher=pooled)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), alpha=0.5, temperature=2.0)
    t = np.log(pooled.predict(x, verbose=0))
    s = np.log(pooled_student.predict(x, verbose=0))
    ce = -_log_softmax(s)[np.arange(len(y)), y].mean()
    kd = _kd_numpy(t, s, 2.0, standardize=True).mean()
    np.testing.assert_allclose(float(distiller.compute_loss(x, y, training=False)),
                               0.5 * ce + 0.5 * kd, rtol=1e-4)


@pytest.mark.slow
def test_badly_scaled_teacher_does_not_hurt_the_student():
    from keras_tl.examples.datasets import load_mnist_5k

    x, y = load_mnist_5k()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    # Small enough that the student alone stays well below the teacher
    # (about 0.46 against 0.86), where what it learns from the teacher shows.
    train, test = order[:1200], order[2000:3000]
    epochs, batch = 4, 32

    def schedule():
        return keras.optimizers.schedules.CosineDecay(2e-3, epochs * len(train) // batch + epochs)

    keras.utils.set_random_seed(0)
    teacher = build_small_cnn((28, 28, 1), 10, width=16, name="teacher")
    teacher.compile(keras.optimizers.Adam(schedule()), "sparse_categorical_crossentropy")
    teacher.fit(x[train], y[train], epochs=epochs, batch_size=batch, verbose=0)
    kernel, bias = teacher.get_layer("logits").get_weights()
    # Same predictions, logits 8x larger: an overconfident softmax teacher.
    teacher.get_layer("logits").set_weights([kernel * 8, bias * 8])

    def student():
        keras.utils.set_random_seed(1)
        return build_small_cnn((28, 28, 1), 10, width=4, name="student")

    def acc(model):
        return float((model.predict(x[test], verbose=0).argmax(-1) == y[test]).mean())

    alone = student()
    alone.compile(keras.optimizers.Adam(schedule()), "sparse_categorical_crossentropy")
    alone.fit(x[train], y[train], epochs=epochs, batch_size=batch, verbose=0)
    common = dict(epochs=epochs, batch_size=batch, learning_rate=schedule(), verbose=0)
    distilled = distill(teacher, student(), (x[train], y[train]), **common)
    plain = distill(teacher, student(), (x[train], y[train]), student_loss_weight=0.1,
                    temperature=4.0, standardize=False, **common)
    scores = {"teacher": acc(teacher), "alone": acc(alone),
              "defaults": acc(distilled), "plain_kd": acc(plain)}
    assert scores["defaults"] >= scores["alone"] - 0.01, scores
    # The failure the defaults avoid: plain KD on this teacher hurts.
    assert scores["plain_kd"] < scores["defaults"], scores


def test_standardized_loss_has_finite_gradients_for_equal_student_logits():
    """A student whose logits are all equal for an example (all-zero ReLU
    features) must not turn the standardized loss's gradient into NaN."""
    teacher = np.array([[2.0, 0.5, -1.0], [1.0, -3.0, 1.0]], np.float32)
    student = keras.Variable(np.array([[0.0, 0.0, 0.0], [0.2, -0.1, 0.4]], np.float32))
    if keras.backend.backend() == "jax":
        import jax

        gradient = jax.grad(
            lambda s: keras.ops.sum(soft_target_loss(teacher, s, 4.0, standardize=True))
        )(student.value)
    elif keras.backend.backend() == "torch":
        loss = keras.ops.sum(soft_target_loss(teacher, student, 4.0, standardize=True))
        loss.backward()
        gradient = student.value.grad
    else:
        with tf.GradientTape() as tape:
            loss = keras.ops.sum(soft_target_loss(teacher, student, 4.0, standardize=True))
        gradient = tape.gradient(loss, student.value)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(gradient)))


# -- teachers ending in probabilities, whatever their structure ----------


def _image_data(n=16, seed=0, classes=NUM_CLASSES):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    return x, (np.arange(n) % classes).astype("int32")


def _image_logits_model(name, seed):
    """A small conv net from 8x8 images to NUM_CLASSES logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, name="scores")(h), name=name)


def _image_student():
    return build_small_cnn((8, 8, 1), NUM_CLASSES, width=2, name="student")


def _exact_logits(model, x):
    return keras.Model(model.inputs, model.get_layer("scores").output).predict(x, verbose=0)


@pytest.mark.slow
def test_nested_softmax_teachers_give_their_exact_logits():
    """A final Activation("softmax") or Softmax layer, inside a model the
    teacher ends with (a Sequential around a functional model, a functional
    model around a Sequential): the logits before it, not log-probabilities
    (which differ from them by each example's log-sum-exp)."""
    x, _ = _image_data()
    for softmax in (lambda: keras.layers.Activation("softmax"), keras.layers.Softmax):
        core = _image_logits_model("core", 1)
        inner = keras.Model(core.inputs, softmax()(core.output), name="inner")
        want = _exact_logits(core, x)
        wrapped = keras.Sequential([keras.Input((8, 8, 1)), inner], name="wrapped")
        inputs = keras.Input((8, 8, 1))
        around = keras.Model(inputs, keras.layers.Identity()(inner(inputs)), name="around")
        for teacher in (inner, wrapped, around):
            distiller = Distiller(student=_image_student(), teacher=teacher)
            assert distiller._sources["teacher"][1] == "logits", teacher.name
            np.testing.assert_allclose(distiller.teacher_logits(x)["logits"], want,
                                       rtol=1e-4, atol=1e-5, err_msg=teacher.name)
    # A Sequential ending in a softmax Dense, wrapped: the pre-activation,
    # recomputed from the Dense layer's input and weights.
    keras.utils.set_random_seed(2)
    sequential = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(NUM_CLASSES, activation="softmax")])
    inputs = keras.Input((8, 8, 1))
    teacher = keras.Model(inputs, sequential(inputs))
    dense = sequential.layers[-1]
    kernel, bias = dense.get_weights()
    want = x.reshape(len(x), -1) @ kernel + bias
    distiller = Distiller(student=_image_student(), teacher=teacher)
    np.testing.assert_allclose(distiller.teacher_logits(x)["logits"], want, rtol=1e-4, atol=1e-5)
    distiller.compile(optimizer="adam")
    history = distiller.fit(x, _image_data()[1], epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.slow
def test_keras_tl_head_teacher_gives_the_head_logits():
    """keras-tl's head (Dense "logits", softmax "probabilities", ClassNames)
    nested in a teacher: the Dense layer's output exactly."""
    from keras_tl.heads import build_head

    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, activation="relu")(inputs))
    head = build_head(int(features.shape[-1]), NUM_CLASSES, list("abcd"))
    teacher = keras.Model(inputs, head(features), name="headed")
    x, y = _image_data()
    logits_view = keras.Model(head.inputs, head.get_layer("logits").output)
    want = logits_view.predict(keras.Model(inputs, features).predict(x, verbose=0), verbose=0)
    distiller = Distiller(student=_image_student(), teacher=teacher)
    np.testing.assert_allclose(distiller.teacher_logits(x)["logits"], want, rtol=1e-4, atol=1e-5)
    # The recipe distils it (class names included) on the cached logits.
    student = distill(teacher, _image_student(), (x, y), epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(student.history.history["loss"][0])


class _SubclassedTeacher(keras.Model):
    """A teacher with its own `call`: no layer graph, no `.output`."""

    def __init__(self, probabilities=False, **kwargs):
        super().__init__(**kwargs)
        self.probabilities = probabilities
        self.flatten = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(6, activation="relu")
        self.scores = keras.layers.Dense(NUM_CLASSES)

    def call(self, inputs):
        logits = self.scores(self.hidden(self.flatten(inputs)))
        return keras.ops.softmax(logits) if self.probabilities else logits

    def logits(self, inputs):
        return self.scores(self.hidden(self.flatten(inputs)))


def _subclassed_teacher(probabilities, x):
    keras.utils.set_random_seed(4)
    teacher = _SubclassedTeacher(probabilities, name="sub_teacher")
    teacher(x[:1])
    return teacher


@pytest.mark.parametrize("probabilities", [False, True])
@pytest.mark.slow
def test_subclassed_teacher_is_checked_on_a_batch(probabilities):
    x, y = _image_data()
    teacher = _subclassed_teacher(probabilities, x)
    logits = keras.ops.convert_to_numpy(teacher.logits(x))
    said = "taken as probabilities" if probabilities else "taken as logits"
    distiller = Distiller(student=_image_student(), teacher=teacher)
    distiller.compile(optimizer="adam", alpha=0.3, temperature=2.0)
    with pytest.warns(UserWarning, match=f"subclassed model.*{said}"):
        got = distiller.teacher_logits(x)["logits"]
    if probabilities:
        # log(p): the logits up to each example's log-sum-exp.
        np.testing.assert_allclose(got, _log_softmax(logits), rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_allclose(got, logits, rtol=1e-5, atol=1e-6)
    # The loss is the formula on those teacher logits.
    s = keras.ops.convert_to_numpy(distiller.student(x, training=False))
    s = keras.ops.convert_to_numpy(keras.Model(distiller.student.inputs,
                                               distiller.student.get_layer("logits").output)(x))
    ce = -_log_softmax(s)[np.arange(len(y)), y].mean()
    kd = _kd_numpy(got, s, 2.0, standardize=True).mean()
    np.testing.assert_allclose(float(distiller.compute_loss(x, y, training=False)),
                               0.3 * ce + 0.7 * kd, rtol=1e-4)

    # Online (the teacher runs inside each step): decided on the first batch
    # before the step is traced.
    fresh = Distiller(student=_image_student(), teacher=teacher)
    fresh.compile(optimizer="adam")
    with pytest.warns(UserWarning, match=said):
        history = fresh.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=1,
                            verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert fresh._sources["teacher"][1] == ("probabilities" if probabilities else "logits")


@pytest.mark.training_path
@pytest.mark.slow
def test_recipe_distils_a_subclassed_teacher():
    """Input shape and number of classes come from the student model, or from
    the data and the teacher's outputs (for a zoo student)."""
    from keras_tl.data import as_dataset
    from keras_tl.recipes.distillation import _geometry_from_batch
    from keras_tl.recipes.distillation import _teacher_geometry

    x, y = _image_data()
    teacher = _subclassed_teacher(True, x)
    with pytest.warns(UserWarning, match="taken as probabilities"):
        student = distill(teacher, _image_student(), (x, y), epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(student.history.history["loss"][0])
    assert _teacher_geometry(teacher, "mobilenet_v3_small") == (None, None)
    data = as_dataset((x, y), batch_size=8)
    assert _geometry_from_batch(teacher, data) == ((8, 8, 1), NUM_CLASSES)
    # With an augmentation the teacher runs online.
    teacher = _subclassed_teacher(False, x)
    flip = keras.layers.RandomFlip("horizontal", seed=0)
    with pytest.warns(UserWarning, match="taken as logits"):
        student = distill(teacher, _image_student(), (x, y), epochs=1, batch_size=8,
                          augmentation=flip, verbose=0)
    assert np.isfinite(student.history.history["loss"][0])


@pytest.mark.slow
def test_explicit_teacher_outputs():
    import warnings

    x, y = _image_data()
    # A softmax the graph search cannot see (a Lambda): "auto" takes the
    # output as logits, "probabilities" uses its log.
    core = _image_logits_model("core", 5)
    hidden_softmax = keras.Model(core.inputs, keras.layers.Lambda(keras.ops.softmax)(core.output))
    logits = _exact_logits(core, x)
    auto = Distiller(student=_image_student(), teacher=hidden_softmax)
    np.testing.assert_allclose(auto.teacher_logits(x)["logits"], _softmax(logits), rtol=1e-4)
    said = Distiller(student=_image_student(), teacher=hidden_softmax,
                     teacher_outputs="probabilities")
    np.testing.assert_allclose(said.teacher_logits(x)["logits"], _log_softmax(logits),
                               rtol=1e-4, atol=1e-5)
    # "probabilities" still finds the logits where the graph shows them.
    visible = keras.Model(core.inputs, keras.layers.Softmax()(core.output))
    found = Distiller(student=_image_student(), teacher=visible, teacher_outputs="probabilities")
    np.testing.assert_allclose(found.teacher_logits(x)["logits"], logits, rtol=1e-4, atol=1e-5)
    # "logits" on a model ending in softmax: as said, with a warning.
    with pytest.warns(UserWarning, match="teacher_outputs='logits', but the teacher"):
        forced = Distiller(student=_image_student(), teacher=visible, teacher_outputs="logits")
    np.testing.assert_allclose(forced.teacher_logits(x)["logits"], _softmax(logits), rtol=1e-4)
    # A subclassed teacher, said outright: no batch check, no warning.
    for probabilities in (False, True):
        teacher = _subclassed_teacher(probabilities, x)
        kind = "probabilities" if probabilities else "logits"
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            # This small teacher is smaller than its student on purpose.
            warnings.filterwarnings("ignore", message="The teacher .* parameters")
            distiller = Distiller(student=_image_student(), teacher=teacher, teacher_outputs=kind)
            got = distiller.teacher_logits(x)["logits"]
        want = keras.ops.convert_to_numpy(teacher.logits(x))
        np.testing.assert_allclose(got, _log_softmax(want) if probabilities else want,
                                   rtol=1e-4, atol=1e-5)
    # Saved with the distiller's config; the recipe passes it on.
    assert said.get_config()["teacher_outputs"] == "probabilities"
    student = distill(hidden_softmax, _image_student(), (x, y), epochs=1, batch_size=8,
                      teacher_outputs="probabilities", verbose=0)
    assert np.isfinite(student.history.history["loss"][0])


def test_unknown_teacher_outputs_is_refused():
    x, y = _image_data()
    teacher = _image_logits_model("teacher", 6)
    match = "teacher_outputs must be one of 'auto', 'logits', 'probabilities'; got 'softmax'"
    with pytest.raises(ValueError, match=match):
        Distiller(student=_image_student(), teacher=teacher, teacher_outputs="softmax")
    with pytest.raises(ValueError, match=match):
        distill(teacher, _image_student(), (x, y), epochs=1, teacher_outputs="softmax", verbose=0)


def test_distiller_takes_keras_constructor_and_warns_on_a_small_teacher():
    big, small = _dense_model("big", 1, hidden=32), _dense_model("small", 2, hidden=4)
    # Keras' order, positionally: the teacher first; it is frozen.
    distiller = Distiller(big, small)
    assert distiller.teacher is big and distiller.student is small and not big.trainable
    assert distiller.student_loss_weight == 0.5
    assert isinstance(distiller.distillation_losses[0], SoftTargetDistillation)
    # The old keras-tl order, (student, teacher): a warning names the mix-up.
    big2, small2 = _dense_model("big2", 1, hidden=32), _dense_model("small2", 2, hidden=4)
    with pytest.warns(UserWarning, match="takes \\(teacher, student\\)"):
        Distiller(small2, big2)
    # keras.distillation's loss objects, weights and student_loss_weight.
    logits = keras.distillation.LogitsDistillation(temperature=3.0)
    mixed = Distiller(big, small, [logits, SoftTargetDistillation(2.0)], [0.5, 1.5],
                      student_loss_weight=0.2)
    assert mixed.distillation_loss_weights == [0.5, 1.5] and mixed.student_loss_weight == 0.2
    x, y = _data()
    mixed.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert np.isfinite(mixed.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    with pytest.raises(ValueError, match="set them on the loss objects"):
        Distiller(big, small, logits, temperature=2.0)


def test_alpha_is_a_deprecated_student_loss_weight():
    teacher, student = _dense_model("teacher", 1, hidden=16), _dense_model("student", 2)
    with pytest.warns(DeprecationWarning, match="student_loss_weight"):
        distiller = Distiller(teacher, student, alpha=0.3)
    assert distiller.student_loss_weight == 0.3 and distiller.alpha == 0.3


def test_files_saved_with_the_old_config_still_load():
    teacher, student = _dense_model("teacher", 1, hidden=16), _dense_model("student", 2)
    ser = keras.saving.serialize_keras_object
    old = {"name": "distiller", "trainable": True, "student": ser(student),
           "teacher": ser(teacher), "temperature": 3.0, "alpha": 0.25, "standardize": False,
           "hint_layers": None, "hint_weight": 1.0, "teacher_logits_layer": None,
           "student_logits_layer": None, "teacher_outputs": "auto"}
    distiller = Distiller.from_config(old)
    assert distiller.student_loss_weight == 0.25
    assert distiller.temperature == 3.0 and distiller.standardize is False
    again = Distiller.from_config(distiller.get_config())
    assert again.get_config()["distillation_loss_weights"] == [1.0]
    assert again.temperature == 3.0
