"""Weight averaging (`ema=`) in every recipe that trains by loss: the model
ends with the optimizer's averages of its weights."""

import keras
import numpy as np
import pytest

import keras_tl


class _AveragesAtTheEnd(keras.callbacks.Callback):
    """Records, when training ends, how far each trained weight is from its
    average (all optimizers of a MultiOptimizer included)."""

    def on_train_end(self, logs=None):
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        self.gaps, self.momenta = [], set()
        for inner in getattr(optimizer, "optimizers", [optimizer]):
            self.momenta.add(inner.ema_momentum if inner.use_ema else None)
            for variable, average in zip(inner._trainable_variables,
                                         inner._model_variables_moving_average):
                self.gaps.append(float(np.abs(keras.ops.convert_to_numpy(variable)
                                              - keras.ops.convert_to_numpy(average)).max()))


def _images(n=32, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = (rng.uniform(0, 120, (n, 16, 16, 3)) + 120 * y[:, None, None, None]).astype("float32")
    return x, y


def _cnn(width=8, name="cnn"):
    keras.utils.set_random_seed(0)
    return keras_tl.build_small_cnn((16, 16, 3), 2, width=width, name=name)


@pytest.mark.training_path
@pytest.mark.parametrize("recipe", ["feature_extraction", "distill", "adapt_domain"])
@pytest.mark.slow
def test_every_loss_trained_recipe_ends_with_the_averaged_weights(recipe):
    x, y = _images()
    check = _AveragesAtTheEnd()
    common = dict(epochs=2, batch_size=8, ema=0.9, callbacks=[check], verbose=0)
    if recipe == "feature_extraction":
        cnn = _cnn()
        backbone = keras.Model(cnn.input, cnn.get_layer("avg_pool").output)
        # With augmentation the head trains in the loop, by loss.
        keras_tl.feature_extraction(backbone, (x, y), (x, y), augmentation="light",
                                    **common)
    elif recipe == "distill":
        keras_tl.distill(_cnn(), _cnn(4, "student"), (x, y), (x, y), **common)
    else:
        classifier = _cnn()
        classifier.compile("adam", "sparse_categorical_crossentropy")
        keras_tl.adapt_domain(classifier, (x, y), x[::-1], method="coral", **common)
    assert check.momenta == {0.9}
    assert check.gaps and max(check.gaps) < 1e-6
