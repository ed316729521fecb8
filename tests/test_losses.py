"""Label smoothing on integer labels, and the recipes that take it with
integer labels: the hard-label term of distillation and text fine-tuning."""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.losses import SparseLabelSmoothingCrossentropy


def test_sparse_smoothing_equals_categorical_smoothing_on_one_hot_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype("float32")
    labels = np.array([0, 3, 1, 2, 2, 1])
    for smoothing in (0.0, 0.1, 0.3):
        for from_logits, predictions in ((True, logits),
                                         (False, keras.ops.softmax(logits))):
            sparse = SparseLabelSmoothingCrossentropy(smoothing, from_logits=from_logits)
            categorical = keras.losses.CategoricalCrossentropy(
                label_smoothing=smoothing, from_logits=from_logits)
            np.testing.assert_allclose(float(sparse(labels, predictions)),
                                       float(categorical(np.eye(4)[labels], predictions)),
                                       rtol=1e-5)
    # Column labels, as Keras feeds them, give the same value.
    loss = SparseLabelSmoothingCrossentropy(0.1, from_logits=True)
    assert float(loss(labels[:, None], logits)) == pytest.approx(float(loss(labels, logits)))
    restored = SparseLabelSmoothingCrossentropy.from_config(loss.get_config())
    assert (restored.label_smoothing, restored.from_logits) == (0.1, True)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        SparseLabelSmoothingCrossentropy(1.0)


def test_distill_smooths_the_hard_label_term_only(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(16) % 2
    x = (rng.uniform(0, 120, (16, 12, 12, 3)) + 120 * y[:, None, None, None]).astype("float32")
    keras.utils.set_random_seed(0)
    teacher = keras_tl.build_small_cnn((12, 12, 3), 2, width=4, name="teacher")
    student = keras_tl.build_small_cnn((12, 12, 3), 2, width=2, name="student")
    captured = {}

    class Capture(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            captured["loss"] = self.model._student_loss_fn

    keras_tl.distill(teacher, student, (x, y), epochs=1, batch_size=8, label_smoothing=0.2,
                     callbacks=[Capture()], verbose=0)
    loss = captured["loss"]
    assert isinstance(loss, SparseLabelSmoothingCrossentropy)
    assert (loss.label_smoothing, loss.from_logits) == (0.2, True)
    with pytest.raises(ValueError, match="label_smoothing must be a number in"):
        keras_tl.distill(teacher, student, (x, y), label_smoothing=1.5, verbose=0)


@pytest.mark.slow
def test_text_fine_tuning_smooths_the_labels():
    from test_text import tiny_parts
    from test_text import toy_data

    texts, labels = toy_data()
    captured = []

    class Capture(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            captured.append(self.model.loss)

    model = keras_tl.text_classifier(
        (texts, labels), (texts, labels), preset=tiny_parts(), epochs=1, batch_size=4,
        label_smoothing=0.1, unfreeze={"phases": 1}, callbacks=[Capture()], verbose=0)
    assert isinstance(captured[0], SparseLabelSmoothingCrossentropy)
    assert captured[0].label_smoothing == 0.1
    assert np.all(np.isfinite(model.history.history["loss"]))
