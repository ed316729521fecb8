"""Magnitude pruning and quantization-aware training (the `optimize` extra).

TensorFlow Model Optimization (tfmot 0.8) works only on `tf_keras` models:
on Keras 3 models `prune_low_magnitude` and `quantize_model` raise
`ValueError`. So this module bridges: it rebuilds the same architecture with
`tf_keras` (Keras Applications networks with `tf_keras.applications`, other
layers from their configs), copies the weights by position, prunes or trains
with fake quantization there, and then copies the pruned weights back into
the Keras 3 model, or converts the quantization-aware model to an int8
`.tflite` with `keras_tl.export.to_tflite`.

Importing tfmot sets `TF_USE_LEGACY_KERAS=1` for the whole process, so it is
imported lazily, here only, when a function below is called.

Install with `pip install keras-tl[optimize]`
(`tensorflow-model-optimization==0.8.*`, `tf-keras==2.21.*`).
"""

import inspect

import keras
import numpy as np

from keras_tl._utils.validation import leaf_layers
from keras_tl.heads import ClassNames
from keras_tl.preprocessing import ImagePreprocessing

__all__ = ["prune", "quantization_aware_training", "sparsity", "to_tf_keras"]

_BASE_LAYER_KWARGS = {"name", "trainable", "dtype", "input_shape", "batch_input_shape",
                      "batch_size", "autocast", "input_dim"}


def _tfmot():
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError as error:
        raise ImportError(
            "Pruning and quantization-aware training need the `optimize` "
            "extra: pip install 'tensorflow-model-optimization==0.8.*' "
            "'tf-keras==2.21.*' (or pip install keras-tl[optimize])."
        ) from error
    return tfmot


def _tf_keras():
    try:
        import tf_keras
    except ImportError as error:
        raise ImportError(
            "The tfmot bridge needs tf-keras: pip install 'tf-keras==2.21.*'."
        ) from error
    return tf_keras


def _image_preprocessing_twin():
    """A tf_keras layer doing `ImagePreprocessing`'s arithmetic."""
    tf_keras = _tf_keras()
    import tensorflow as tf

    class TFKerasImagePreprocessing(tf_keras.layers.Layer):
        def __init__(self, mode="tf", **kwargs):
            super().__init__(**kwargs)
            self.mode = mode

        def call(self, inputs):
            # Same constants and order of operations as ImagePreprocessing.
            x = tf.cast(inputs, self.compute_dtype)
            if self.mode == "caffe":
                x = tf.reverse(x, axis=[-1]) - tf.constant(
                    (103.939, 116.779, 123.68), dtype=self.compute_dtype)
            elif self.mode == "tf":
                x = x / 127.5 - 1.0
            elif self.mode == "torch":
                mean = tf.constant((0.485, 0.456, 0.406), dtype=self.compute_dtype)
                std = tf.constant((0.229, 0.224, 0.225), dtype=self.compute_dtype)
                x = (x / 255.0 - mean) / std
            elif self.mode == "unit":
                x = x / 255.0
            return x

        def get_config(self):
            return {**super().get_config(), "mode": self.mode}

    return TFKerasImagePreprocessing


def _clean_config(layer, tf_class):
    """The Keras 3 layer's config in the form the tf_keras class accepts."""
    tf_keras = _tf_keras()
    config = dict(layer.get_config())
    dtype = config.get("dtype")
    if isinstance(dtype, dict):
        config["dtype"] = dtype.get("config", {}).get("name", "float32")
    parameters = inspect.signature(tf_class.__init__).parameters
    accepted = set(parameters) | _BASE_LAYER_KWARGS
    cleaned = {}
    for key, value in config.items():
        if key not in accepted:
            continue
        if isinstance(value, dict) and "class_name" in value:
            # Serialized initializers, regularizers and constraints: the
            # weights are copied afterwards, so only regularizers and
            # constraints matter; rebuild them by class name.
            kind = key.rsplit("_", 1)[-1]
            module = {"initializer": tf_keras.initializers,
                      "regularizer": tf_keras.regularizers,
                      "constraint": tf_keras.constraints}.get(kind)
            if module is None:
                continue
            try:
                value = module.get({"class_name": value["class_name"],
                                    "config": value.get("config", {})})
            except (ValueError, TypeError):
                if kind != "initializer":
                    raise ValueError(
                        f"Layer {layer.name!r}: its {key} "
                        f"({value['class_name']}) has no tf_keras equivalent."
                    )
                continue
        cleaned[key] = value
    return cleaned


class _Rebuild:
    """Rebuilds a Keras 3 functional model layer by layer in tf_keras."""

    def __init__(self):
        self.tf_keras = _tf_keras()
        self.pairs = []  # (keras 3 layer or network, tf_keras twin)
        self.created = {}

    def twin(self, layer):
        if id(layer) in self.created:
            return self.created[id(layer)]
        tf_keras = self.tf_keras
        if isinstance(layer, ImagePreprocessing):
            twin = _image_preprocessing_twin()(layer.mode, name=layer.name)
        else:
            tf_class = getattr(tf_keras.layers, type(layer).__name__, None)
            if tf_class is None or type(layer).__module__.split(".")[0] != "keras":
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}) has no tf_keras "
                    "equivalent, so tfmot cannot prune or quantize this model. "
                    "Use standard Keras layers, or a Keras Applications network."
                )
            twin = tf_class(**_clean_config(layer, tf_class))
        self.created[id(layer)] = twin
        if layer.weights:
            self.pairs.append((layer, twin))
        return twin

    def zoo_network(self, spec, network):
        if id(network) in self.created:
            return self.created[id(network)]
        constructor = getattr(self.tf_keras.applications, spec.constructor)
        kwargs = dict(include_top=False, weights=None,
                      input_shape=tuple(network.input_shape[1:]))
        if "name" in inspect.signature(constructor).parameters:
            kwargs["name"] = network.name
        twin = constructor(**kwargs)
        self.created[id(network)] = twin
        self.pairs.append((network, twin))
        return twin

    def apply(self, model, inputs):
        """Applies `model`'s graph to tf_keras tensors `inputs` (a list)."""
        config = model.get_config()
        tensors = {}
        for (name, node, index), tensor in zip(
            [tuple(entry) for entry in config["input_layers"]]
            if isinstance(config["input_layers"][0], list) else [tuple(config["input_layers"])],
            inputs,
        ):
            tensors[(name, node, index)] = tensor
        for layer_config in config["layers"]:
            name = layer_config["name"]
            layer = model.get_layer(name)
            if isinstance(layer, keras.layers.InputLayer):
                continue
            for node_index, node in enumerate(layer_config["inbound_nodes"]):
                args = [self._lookup(arg, tensors) for arg in node["args"]]
                if any(_has_tensor(v) for v in node.get("kwargs", {}).values()):
                    raise ValueError(
                        f"Layer {name!r} takes tensors as keyword arguments; the "
                        "tfmot bridge supports layers called on positional inputs."
                    )
                call_input = args[0] if len(args) == 1 else args
                if isinstance(layer, ClassNames):
                    outputs = call_input  # identity: names are not computation
                elif isinstance(layer, keras.Model):
                    spec = _zoo_spec(layer)
                    if spec is not None:
                        outputs = self.zoo_network(spec, layer)(call_input)
                    else:
                        nested = call_input if isinstance(call_input, list) else [call_input]
                        outputs = self.apply(layer, nested)
                else:
                    outputs = self.twin(layer)(call_input)
                outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
                for tensor_index, tensor in enumerate(outputs):
                    tensors[(name, node_index, tensor_index)] = tensor
        output_entries = config["output_layers"]
        if not isinstance(output_entries[0], list):
            output_entries = [output_entries]
        outputs = [tensors[tuple(entry)] for entry in output_entries]
        return outputs[0] if len(outputs) == 1 else outputs

    @staticmethod
    def _lookup(arg, tensors):
        if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
            return tensors[tuple(arg["config"]["keras_history"])]
        if isinstance(arg, list):
            return [_Rebuild._lookup(a, tensors) for a in arg]
        return arg


def _zoo_spec(layer):
    from keras_tl import backbones

    try:
        spec = backbones.get_spec(layer.name)
    except (KeyError, ValueError):
        return None
    return spec if spec.layer_name == layer.name else None


def _has_tensor(value):
    if isinstance(value, dict):
        return value.get("class_name") == "__keras_tensor__"
    if isinstance(value, list):
        return any(_has_tensor(v) for v in value)
    return False


def _copy_weights(pairs, to_tf_keras=True):
    for source, target in pairs:
        if not to_tf_keras:
            source, target = target, source
        source_weights = _layer_weights(source)
        target_shapes = [tuple(w.shape) for w in _layer_variables(target)]
        shapes = [tuple(w.shape) for w in source_weights]
        if shapes != target_shapes:
            raise ValueError(
                f"Weights of {source.name!r} do not match its twin "
                f"{target.name!r} by position: {shapes[:4]}... vs "
                f"{target_shapes[:4]}..."
            )
        for variable, value in zip(_layer_variables(target), source_weights):
            variable.assign(value)


def _layer_variables(layer):
    """The layer's own variables; for tfmot wrappers, the wrapped layer's."""
    inner = getattr(layer, "layer", None)
    if inner is not None and type(layer).__module__.startswith("tensorflow_model_optimization"):
        return inner.weights if not hasattr(inner, "layers") else _network_variables(inner)
    if hasattr(layer, "layers") and not isinstance(layer, keras.layers.Layer):
        return _network_variables(layer)
    return layer.weights


def _network_variables(network):
    variables = []
    for layer in network.layers:
        variables.extend(_layer_variables(layer))
    return variables


def _layer_weights(layer):
    return [np.asarray(v.numpy() if hasattr(v, "numpy") else v) for v in _layer_variables(layer)]


def to_tf_keras(model):
    """Rebuilds a Keras 3 model in tf_keras, with the same weights.

    Keras Applications networks nested in the model (as `build_backbone`
    nests them) are rebuilt with `tf_keras.applications` (layouts match for
    ResNet50, VGG16, InceptionV3, MobileNetV2, MobileNetV3Small,
    EfficientNetB0); other layers from their configs; `ImagePreprocessing`
    becomes a tf_keras layer doing the same arithmetic and `ClassNames` is
    dropped (it computes nothing).

    Args:
        model: a functional Keras 3 model.

    Returns:
        `(tf_keras_model, pairs)`: the twin and the list of
        `(keras3_layer, tf_keras_layer)` pairs holding weights, for
        copying weights back with `copy_weights_back`.

    Raises:
        ValueError: a layer with no tf_keras equivalent, or weights that do
            not match by position.

    Example:

    ```python
    twin, pairs = to_tf_keras(model)
    np.allclose(twin.predict(x), model.predict(x), atol=1e-5)  # -> True
    ```
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "get_config"):
        raise TypeError(f"Expected a Keras 3 functional model; got {type(model).__name__}.")
    tf_keras = _tf_keras()
    rebuild = _Rebuild()
    inputs = [
        tf_keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=t.name.split(":")[0])
        for t in model.inputs
    ]
    outputs = rebuild.apply(model, inputs)
    twin = tf_keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
    _copy_weights(rebuild.pairs)
    return twin, rebuild.pairs


def _rebuild_wrapped(model, wrap):
    """`to_tf_keras`, with `wrap` applied to every layer as it is created."""
    tf_keras = _tf_keras()
    rebuild = _Rebuild()
    base_twin, base_zoo = rebuild.twin, rebuild.zoo_network

    def twin(layer):
        known = id(layer) in rebuild.created
        result = base_twin(layer)
        if not known:
            result = wrap(result)
            rebuild.created[id(layer)] = result
            rebuild.pairs = [(k, result if t is not None and k is layer else t)
                             for k, t in rebuild.pairs]
        return result

    def zoo_network(spec, network):
        known = id(network) in rebuild.created
        result = base_zoo(spec, network)
        if not known:
            # Copy the weights into the plain twin, then clone it with the
            # wrapper around each layer (clone_model re-initializes).
            _copy_weights([(network, result)])

            def clone(layer):
                return wrap(layer.__class__.from_config(layer.get_config()))

            cloned = tf_keras.models.clone_model(result, clone_function=clone)
            _copy_weights([(result, cloned)])
            rebuild.created[id(network)] = cloned
            rebuild.pairs = [(k, cloned if k is network else t) for k, t in rebuild.pairs]
            result = cloned
        return result

    rebuild.twin, rebuild.zoo_network = twin, zoo_network
    inputs = [
        tf_keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=t.name.split(":")[0])
        for t in model.inputs
    ]
    outputs = rebuild.apply(model, inputs)
    twin_model = tf_keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs,
                                name=model.name)
    _copy_weights(rebuild.pairs)
    return twin_model, rebuild.pairs


def _fit_arguments(train_data, batch_size):
    """`fit` arguments for numpy `(x, y)` or a batched `tf.data.Dataset`."""
    import tensorflow as tf

    if isinstance(train_data, tuple) and len(train_data) == 2:
        x, y = np.asarray(train_data[0], np.float32), np.asarray(train_data[1])
        return {"x": x, "y": y, "batch_size": batch_size}, int(np.ceil(len(x) / batch_size))
    if isinstance(train_data, tf.data.Dataset):
        steps = int(train_data.cardinality().numpy())
        if steps < 0:
            raise ValueError(
                "The training dataset has unknown length; pass a finite, "
                "batched tf.data.Dataset (or (x, y) arrays)."
            )
        return {"x": train_data}, steps
    raise TypeError(
        "train_data must be a tuple (x, y) of arrays or a batched "
        f"tf.data.Dataset of (x, y); got {type(train_data).__name__}."
    )


def _compile(twin, learning_rate, loss):
    tf_keras = _tf_keras()
    twin.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss=loss,
                 metrics=["accuracy"])


def prune(
    model,
    train_data,
    *,
    target_sparsity=0.5,
    epochs=2,
    batch_size=32,
    learning_rate=1e-4,
    loss="sparse_categorical_crossentropy",
    pruning_fraction=0.6,
    verbose=0,
):
    """Magnitude pruning with fine-tuning; writes the result into `model`.

    The model is rebuilt in tf_keras (see `to_tf_keras`), every layer
    tfmot can prune (`Conv2D`, `Dense`, `DepthwiseConv2D`, ...) is wrapped
    in `prune_low_magnitude`, and the twin is fine-tuned while the sparsity
    of those kernels rises from 0 to `target_sparsity` (polynomial decay
    over the first `pruning_fraction` of the steps, then held). The pruned
    weights, with their zeros, are then copied back into `model`, which
    stays a plain Keras 3 model: it saves, exports and zips smaller.

    Args:
        model: a functional Keras 3 classifier.
        train_data: `(x, y)` arrays or a batched `tf.data.Dataset`.
        target_sparsity: final fraction of zeros in each pruned kernel.
        epochs: fine-tuning epochs.
        batch_size: batch size for arrays.
        learning_rate: Adam learning rate of the fine-tuning.
        loss: a loss name matching the model's outputs (the default suits
            softmax probabilities and integer labels).
        pruning_fraction: share of the steps over which sparsity rises.
        verbose: `fit` verbosity.

    Returns:
        `model`, with pruned weights.

    Example:

    ```python
    prune(model, (x_train, y_train), target_sparsity=0.5, epochs=2)
    sparsity(model)["block3_conv"]  # -> 0.5
    ```
    """
    if not 0.0 < target_sparsity < 1.0:
        raise ValueError(f"target_sparsity must be in (0, 1); got {target_sparsity}.")
    tfmot = _tfmot()
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    registry = prune_registry.PruneRegistry
    fit_arguments, steps_per_epoch = _fit_arguments(train_data, batch_size)
    total_steps = max(1, steps_per_epoch * epochs)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=target_sparsity,
        begin_step=0,
        end_step=max(1, int(pruning_fraction * total_steps)),
        frequency=max(1, min(100, total_steps // 20)),
    )

    def wrap(layer):
        if registry.supports(layer) and registry._weight_names(layer):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    twin, pairs = _rebuild_wrapped(model, wrap)
    _compile(twin, learning_rate, loss)
    twin.fit(**fit_arguments, epochs=epochs, verbose=verbose,
             callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    _copy_weights(pairs, to_tf_keras=False)
    return model


def sparsity(model):
    """Fraction of exact zeros in each kernel of `model`.

    Args:
        model: a Keras model.

    Returns:
        A dict `{layer_name: fraction}` for layers with a `kernel` (or
        `depthwise_kernel`), nested models included.

    Example:

    ```python
    sparsity(pruned)["features"]  # -> 0.5
    ```
    """
    result = {}
    for layer in leaf_layers(model):
        for name in ("kernel", "depthwise_kernel"):
            variable = getattr(layer, name, None)
            if variable is not None and hasattr(variable, "numpy"):
                values = np.asarray(variable.numpy())
                result[layer.name] = float(np.mean(values == 0))
                break
    return result


def quantization_aware_training(
    model,
    train_data,
    *,
    epochs=1,
    batch_size=32,
    learning_rate=1e-4,
    loss="sparse_categorical_crossentropy",
    verbose=0,
):
    """Fine-tunes a tf_keras twin of `model` with fake int8 quantization.

    Layers tfmot's default 8-bit scheme supports are annotated one by one
    (what MobileNetV3 and EfficientNet need, as `quantize_model` refuses
    their other layers), the twin is quantized with `quantize_apply` and
    fine-tuned, so the weights learn to live with int8 rounding. Convert the
    result with `keras_tl.export.to_tflite(qat_model, path,
    quantization="int8", representative_data=...)`.

    Keras Applications networks stay nested in the twin, and tfmot cannot
    quantize a model inside a model: for them, QAT raises `ValueError`
    (pruning works).

    Args:
        model: a functional Keras 3 classifier (the original is unchanged).
        train_data: `(x, y)` arrays or a batched `tf.data.Dataset`.
        epochs: fine-tuning epochs.
        batch_size: batch size for arrays.
        learning_rate: Adam learning rate.
        loss: loss name for the model's outputs.
        verbose: `fit` verbosity.

    Returns:
        The quantization-aware tf_keras model.

    Example:

    ```python
    qat = quantization_aware_training(model, (x_train, y_train))
    to_tflite(qat, "qat.tflite", quantization="int8",
              representative_data=x_train, check_data=(x_val, y_val))
    ```
    """
    tfmot = _tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    quantize = tfmot.quantization.keras

    def wrap(layer):
        if registry.supports(layer):
            return quantize.quantize_annotate_layer(layer)
        return layer

    twin, _ = _rebuild_wrapped(model, wrap)
    if any(hasattr(layer, "layers") for layer in twin.layers):
        raise ValueError(
            "tfmot cannot quantize a model nested in a model (here a Keras "
            "Applications network); use post-training int8 "
            "(keras_tl.export.to_tflite(..., quantization='int8')) or prune()."
        )
    with quantize.quantize_scope({"TFKerasImagePreprocessing": _image_preprocessing_twin()}):
        qat = quantize.quantize_apply(twin)
    fit_arguments, _ = _fit_arguments(train_data, batch_size)
    _compile(qat, learning_rate, loss)
    qat.fit(**fit_arguments, epochs=epochs, verbose=verbose)
    return qat
