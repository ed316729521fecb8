"""Domain adaptation: when the target images differ from the training ones.

A classifier trained on one domain (studio photos, MNIST digits) loses
accuracy on a shifted one (phone photos, other scanners) even when the
classes are the same. Three remedies that need no target labels:

- `adabn` (Li et al., "Revisiting Batch Normalization for Practical Domain
  Adaptation", 2016): re-estimate every BatchNormalization layer's
  statistics on target images. No training.
- `coral_loss` (Sun & Saenko, "Deep CORAL", ECCV 2016 workshops): a loss
  matching the covariance of source and target features, added to the
  classification loss.
- DANN (Ganin et al., "Domain-Adversarial Training of Neural Networks",
  JMLR 2016): a domain classifier behind a `GradientReversal` layer teaches
  the features to hide which domain an image came from.

`DomainAdaptation` wraps a classifier to train it with CORAL or DANN on
paired source (labelled) and target (unlabelled) batches;
`keras_tl.recipes.adapt_domain` runs any of the three.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_tl._utils.validation import check_finite

__all__ = [
    "ALIGNMENT_METHODS",
    "DannSchedule",
    "DomainAdaptation",
    "GradientReversal",
    "adabn",
    "batches_of_images",
    "batchnorm_layers",
    "coral_loss",
]

ALIGNMENT_METHODS = ("coral", "dann")


def batchnorm_layers(model):
    """All `BatchNormalization` layers of `model`, nested models included.

    Args:
        model: a `keras.Model`.

    Example:

    ```python
    [layer.name for layer in batchnorm_layers(model)]
    # -> ['block1_bn', 'block2_bn', 'block3_bn']
    ```
    """
    found, seen = [], set()

    def walk(layer):
        for sub in getattr(layer, "layers", []):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            if isinstance(sub, keras.layers.BatchNormalization):
                found.append(sub)
            walk(sub)

    walk(model)
    return found


def adabn(model, target_images, batch_size=64):
    """AdaBN: re-estimates BatchNorm statistics on unlabelled target images.

    Every `BatchNormalization` layer's `moving_mean` and `moving_variance`
    are replaced by the mean and variance of its inputs over all of
    `target_images` (pooled exactly, not a moving average). During the pass
    each BatchNorm layer normalizes with its batch statistics, as in
    training, while every other layer (Dropout, augmentation) stays in
    inference mode; learned weights are untouched. The model is changed in
    place.

    Args:
        model: a `keras.Model` with BatchNormalization layers (nested
            backbones included).
        target_images: unlabelled target images: an array, an `(x, y)`
            tuple (labels ignored), or a `tf.data.Dataset` of images or
            `(images, labels)` batches, in the model's input format.
        batch_size: batch size of the pass over arrays. Larger batches give
            statistics closer to the population ones.

    Returns:
        `model`, adapted.

    Raises:
        ValueError: when the model has no BatchNormalization layer, when
            target arrays hold NaN or infinity (checked before the pass), or
            when the statistics computed from a `tf.data.Dataset` are not
            finite; the model is left unchanged.

    Example:

    ```python
    source_model.evaluate(x_target, y_target)  # before
    adabn(source_model, x_target)
    source_model.evaluate(x_target, y_target)  # after: usually better
    ```
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError(
            f"{model.name} has no BatchNormalization layer, so AdaBN has no "
            "statistics to re-estimate. Use method='coral' or 'dann' instead."
        )
    arrays = target_images
    if isinstance(arrays, tuple) and len(arrays) == 2:
        arrays = arrays[0]
    from_dataset = hasattr(arrays, "element_spec")
    if not from_dataset:
        # One NaN pixel would make every statistic, then every prediction,
        # NaN; arrays can be checked (and the image named) before any work.
        check_finite(np.asarray(arrays), "target_images")
    totals = {id(layer): [0.0, 0.0, 0] for layer in layers}
    for layer in layers:
        # An instance attribute shadows the class's `call` for this pass only,
        # so BatchNorm alone sees training-mode behaviour.
        layer.call = _recording_call(layer, totals[id(layer)])
    try:
        for images in batches_of_images(target_images, batch_size):
            model(images, training=False)
    finally:
        for layer in layers:
            del layer.call
    # All statistics are computed and checked before any is written, so an
    # error leaves the model as it was.
    statistics = []
    for layer in layers:
        total, total_sq, count = totals[id(layer)]
        if count == 0:
            raise ValueError("target_images is empty: no image to estimate statistics on.")
        mean = total / count
        variance = np.maximum(total_sq / count - mean**2, 0.0)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance))):
            # Finite arrays were checked above: then the model itself
            # overflows or holds NaN weights.
            cause = (
                "the target data has non-finite values. Fix or drop those "
                "images (tf.math.is_finite finds them)"
                if from_dataset
                else "the model produces non-finite values on the (finite) target "
                "images; check its weights"
            )
            raise ValueError(
                "AdaBN computed non-finite statistics (NaN or inf) for the "
                f"BatchNormalization layer {layer.name!r}: {cause}. The model's "
                "statistics are left unchanged."
            )
        statistics.append((layer, mean, variance))
    for layer, mean, variance in statistics:
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
    return model


def _recording_call(layer, totals):
    def call(inputs, training=None, mask=None):
        x = ops.cast(inputs, "float32")
        axis = layer.axis % len(x.shape)
        axes = [i for i in range(len(x.shape)) if i != axis]
        mean = ops.mean(x, axis=axes)
        mean_sq = ops.mean(ops.square(x), axis=axes)
        count = int(np.prod([x.shape[i] for i in axes]))
        totals[0] = totals[0] + ops.convert_to_numpy(mean).astype(np.float64) * count
        totals[1] = totals[1] + ops.convert_to_numpy(mean_sq).astype(np.float64) * count
        totals[2] += count
        variance = ops.maximum(mean_sq - ops.square(mean), 0.0)
        gamma = ops.cast(layer.gamma, "float32") if layer.scale else None
        beta = ops.cast(layer.beta, "float32") if layer.center else None
        outputs = ops.batch_normalization(
            x, mean, variance, axis=axis, offset=beta, scale=gamma, epsilon=layer.epsilon
        )
        return ops.cast(outputs, inputs.dtype)

    return call


def batches_of_images(images, batch_size=64):
    """Iterates image batches of an array, `(x, y)` tuple or dataset.

    Args:
        images: an array of images, an `(x, y)` tuple (labels dropped), or a
            batched `tf.data.Dataset` of images or `(images, labels)`.
        batch_size: batch size for arrays.

    Example:

    ```python
    for batch in batches_of_images(x_target, 128):
        model(batch)
    ```
    """
    if isinstance(images, tuple) and len(images) == 2:
        images = images[0]
    if hasattr(images, "element_spec"):
        for batch in images:
            yield batch[0] if isinstance(batch, (tuple, list)) else batch
        return
    images = np.asarray(images, np.float32)
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]


def coral_loss(source_features, target_features):
    """Deep CORAL loss: distance between the feature covariances of two domains.

    `||C_s - C_t||_F^2 / (4 d^2)` with `C` the (unbiased) covariance matrix
    of a batch of `d`-dimensional features. Zero when both batches have the
    same covariance; differentiable in both.

    Args:
        source_features: float tensor `(n_s, d)`.
        target_features: float tensor `(n_t, d)`.

    Returns:
        A scalar tensor.

    Example:

    ```python
    loss = cross_entropy + 1.0 * coral_loss(f_source, f_target)
    ```
    """
    dim = ops.shape(source_features)[-1]
    difference = _covariance(source_features) - _covariance(target_features)
    return ops.sum(ops.square(difference)) / (4.0 * ops.cast(dim, "float32") ** 2)


def _covariance(features):
    features = ops.cast(features, "float32")
    n = ops.cast(ops.shape(features)[0], "float32")
    centered = features - ops.mean(features, axis=0, keepdims=True)
    return ops.matmul(ops.transpose(centered), centered) / ops.maximum(n - 1.0, 1.0)


@keras.saving.register_keras_serializable(package="keras_tl")
class GradientReversal(keras.layers.Layer):
    """Identity forward, gradient multiplied by `-factor` backward (DANN).

    Placed between a feature extractor and a domain classifier: the domain
    classifier learns to tell the domains apart while the features are
    pushed to make that impossible. `factor` lives in a non-trainable
    variable, so `DannSchedule` can raise it during training without
    retracing.

    Args:
        factor: the gradient multiplier (the paper's lambda), >= 0.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    reversed_features = GradientReversal(1.0)(features)
    domain_logit = keras.layers.Dense(1)(reversed_features)
    ```
    """

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        if factor < 0:
            raise ValueError(f"factor must be >= 0; got {factor}.")
        self.initial_factor = float(factor)
        self.factor = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_factor),
            trainable=False,
            name="factor",
        )
        # No state depends on the input shape: built from the start, so a
        # model holding it restores a checkpoint before its first call.
        self.built = True

    def call(self, inputs):
        return _reverse_gradient(inputs, ops.cast(self.factor, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.initial_factor})
        return config


@ops.custom_gradient
def _reverse_gradient(inputs, factor):
    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return -factor * upstream, ops.zeros_like(factor)

    return ops.copy(inputs), grad


@keras.saving.register_keras_serializable(package="keras_tl")
class DomainAdaptation(keras.Model):
    """Trains a classifier on labelled source and unlabelled target batches.

    Called with `{"source": x_s, "target": x_t}` it runs the classifier on
    both batches at once, returns the source predictions (for the usual
    classification loss on source labels) and adds the alignment loss of
    the two batches' features: `"coral"` (`coral_loss`) or `"dann"` (binary
    cross-entropy of a domain classifier behind `GradientReversal`). Called
    with plain images it is the classifier. The classifier's layers are
    shared, so training this model trains the classifier.

    Args:
        classifier: a functional `keras.Model` from images to class
            probabilities.
        method: `"coral"` or `"dann"`.
        feature_layer: name of the layer whose output is aligned; by
            default the input of the layer named `"logits"` (keras-tl
            models), else the output of the classifier's second-to-last
            layer.
        alignment_weight: weight of the alignment loss.
        domain_units: hidden units of the DANN domain classifier.
        **kwargs: standard `keras.Model` arguments.

    Example:

    ```python
    trainer = DomainAdaptation(model, "coral")
    trainer.compile("adam", "sparse_categorical_crossentropy")
    trainer.fit(paired_dataset)  # ({"source": xs, "target": xt}, ys)
    ```
    """

    def __init__(
        self,
        classifier,
        method="coral",
        feature_layer=None,
        alignment_weight=1.0,
        domain_units=64,
        **kwargs,
    ):
        kwargs.setdefault("name", "domain_adaptation")
        super().__init__(**kwargs)
        if method not in ALIGNMENT_METHODS:
            raise ValueError(
                f"Unknown method {method!r}; DomainAdaptation trains with one of "
                f"{ALIGNMENT_METHODS} (use keras_tl.domain_adaptation.adabn for AdaBN)."
            )
        self.classifier = classifier
        self.method = method
        self.feature_layer = feature_layer
        self.alignment_weight = float(alignment_weight)
        self.domain_units = int(domain_units)
        features = _feature_tensor(classifier, feature_layer)
        self.feature_dim = int(np.prod(features.shape[1:]))
        self.feature_model = keras.Model(
            classifier.inputs, [features, classifier.output], name="features_and_outputs"
        )
        if method == "dann":
            self.gradient_reversal = GradientReversal(1.0, name="gradient_reversal")
            self.domain_classifier = keras.Sequential(
                [
                    keras.Input((self.feature_dim,)),
                    keras.layers.Dense(self.domain_units, activation="relu"),
                    keras.layers.Dense(1),
                ],
                name="domain_classifier",
            )
            self.domain_loss = keras.losses.BinaryCrossentropy(from_logits=True)

    def call(self, inputs, training=None):
        if not isinstance(inputs, dict):
            return self.classifier(inputs, training=training)
        source, target = inputs["source"], inputs["target"]
        n_source = ops.shape(source)[0]
        features, outputs = self.feature_model(
            ops.concatenate([source, target], axis=0), training=training
        )
        features = ops.reshape(features, (-1, self.feature_dim))
        if self.method == "coral":
            alignment = coral_loss(features[:n_source], features[n_source:])
        else:
            logits = self.domain_classifier(self.gradient_reversal(features))
            domains = ops.concatenate(
                [ops.zeros((n_source, 1)), ops.ones((ops.shape(target)[0], 1))], axis=0
            )
            alignment = self.domain_loss(domains, logits)
        self.add_loss(self.alignment_weight * alignment)
        return outputs[:n_source]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "classifier": keras.saving.serialize_keras_object(self.classifier),
                "method": self.method,
                "feature_layer": self.feature_layer,
                "alignment_weight": self.alignment_weight,
                "domain_units": self.domain_units,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)


def _feature_tensor(classifier, feature_layer):
    """The features' tensor in `classifier`'s own graph.

    A layer used in two graphs (a recipe's head was built on its own
    `Input`, then called on the backbone's output) has two inbound nodes,
    and `layer.output` / `layer.input` name the first graph's tensor, not
    connected to the classifier's inputs. The tensors are therefore found
    by walking the classifier's graph back from its outputs.
    """
    if feature_layer is not None:
        try:
            layer = classifier.get_layer(feature_layer)
        except ValueError:
            names = [layer.name for layer in classifier.layers]
            raise ValueError(
                f"{classifier.name} has no layer {feature_layer!r}; its layers are "
                f"{names}."
            ) from None
        return _graph_tensor(classifier, lambda op: op is layer, "output")
    head_input = _graph_tensor(classifier, _holds_logits, "input")
    if head_input is not None:
        return head_input
    if len(classifier.layers) < 3:
        raise ValueError(
            f"Cannot tell which layer of {classifier.name} gives the features; pass "
            "feature_layer=<name of the penultimate layer>."
        )
    return _graph_tensor(classifier, lambda op: op is classifier.layers[-2], "output")


def _holds_logits(op):
    if op.name == "logits":
        return True
    if isinstance(op, keras.Model):
        try:
            op.get_layer("logits")
            return True
        except ValueError:
            return False
    return False


def _graph_tensor(classifier, matches, which):
    """The output (or first input) of the first operation, walking back from
    `classifier`'s outputs, that `matches`; `None` if none does."""
    pending, seen = list(classifier.outputs), set()
    while pending:
        tensor = pending.pop(0)
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        history = getattr(tensor, "_keras_history", None)
        if history is None or history.operation is None:
            continue
        node = history.operation._inbound_nodes[history.node_index]
        if matches(history.operation):
            return tensor if which == "output" else node.input_tensors[0]
        pending.extend(node.input_tensors)
    return None


class DannSchedule(keras.callbacks.Callback):
    """Raises the gradient-reversal factor from 0 to `max_factor` (DANN).

    The paper's schedule `factor = max_factor * (2 / (1 + exp(-10 p)) - 1)`,
    `p` the fraction of training done: the domain classifier's noisy early
    gradients do not disturb the features before the classifier has
    learned something.

    Args:
        total_steps: number of training batches in the whole `fit`.
        max_factor: final factor.

    Example:

    ```python
    trainer.fit(data, epochs=10, callbacks=[DannSchedule(10 * steps)])
    ```
    """

    def __init__(self, total_steps, max_factor=1.0):
        super().__init__()
        self.total_steps = max(int(total_steps), 1)
        self.max_factor = float(max_factor)
        self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
        progress = min(self.step / self.total_steps, 1.0)
        factor = self.max_factor * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)
        self.model.gradient_reversal.factor.assign(factor)
        self.step += 1
