"""TensorFlow SavedModels as backbones: TF Hub and Kaggle Models handles,
local folders, `hub.load` objects and Keras' own `model.export()` output.

`tensorflow_hub.KerasLayer` is a Keras 2 layer and does not go into a
Keras 3 model; `keras.layers.TFSMLayer` cannot train with Adam, never runs
BatchNorm in training mode and stores an absolute path. `SavedModelBackbone`
is a Keras 3 layer over `tf.saved_model.load` instead:

- Its weights are the SavedModel's own variables, wrapped (not copied) as
  Keras variables, so the optimizer trains exactly what the graph reads.
- A reusable SavedModel (TF Hub's format: `__call__(inputs, training)`,
  `variables`, `trainable_variables`, `regularization_losses`) can be
  fine-tuned; its regularization losses join the model's losses, and
  `training=True` reaches the graph only when the layer is trainable and
  `train_batchnorm=True` (keras-tl's frozen-BatchNorm rule). A SavedModel
  with only a serving signature (`model.export()`) is for frozen use.
- The `.keras` file carries the SavedModel (Keras' `save_assets` /
  `load_assets`), written with the current variable values, so the
  variables are stored once and the model reloads with the original folder
  gone. A SavedModel is graph code: like Keras, `load_model` refuses it
  under `safe_mode=True` (pass `safe_mode=False` for files you trust).

It needs the TensorFlow backend.
"""

import os
import shutil

import keras

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "SavedModelBackbone",
    "build_saved_model_backbone",
    "is_saved_model",
    "resolve_saved_model",
]

# Hub image models take a fixed size; when the signature leaves it open,
# TF Hub's image feature vectors were trained at 224x224.
DEFAULT_IMAGE_SIZE = (224, 224)

# Last name-scope parts of normalization variables (Keras, TF-Slim, TF Hub).
_NORMALIZATION_VARIABLES = {"gamma", "beta", "moving_mean", "moving_variance"}

_HUB_HOSTS = {"tfhub.dev": "tfhub.dev", "www.kaggle.com": "www.kaggle.com",
              "kaggle.com": "www.kaggle.com"}


def is_saved_model(backbone):
    """Whether `backbone` names a SavedModel: a folder holding
    `saved_model.pb`, a TF Hub or Kaggle Models handle, or an object that
    `tf.saved_model.load` / `hub.load` returned.

    Example:

    >>> is_saved_model("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5")
    True
    >>> is_saved_model("resnet50")
    False
    """
    if isinstance(backbone, os.PathLike):
        backbone = os.fspath(backbone)
    if isinstance(backbone, str):
        if backbone.startswith(("https://tfhub.dev/", "https://www.kaggle.com/models/",
                                "https://kaggle.com/models/")):
            return True
        return os.path.isfile(os.path.join(backbone, "saved_model.pb"))
    return _is_loaded_saved_model(backbone)


def _is_loaded_saved_model(value):
    return (not isinstance(value, (keras.layers.Layer, str))
            and hasattr(value, "signatures") and hasattr(value, "variables"))


def resolve_saved_model(handle):
    """The local folder of a SavedModel handle.

    A folder is returned as is. A `https://tfhub.dev/...` or
    `https://www.kaggle.com/models/...` handle is downloaded and cached by
    `tensorflow_hub` (the `hub` extra; `TFHUB_CACHE_DIR` is honoured), after
    a quick probe of its host, so that a machine without network fails at
    once with what to do instead.

    Args:
        handle: a folder or a handle.

    Returns:
        A folder holding `saved_model.pb`.

    Raises:
        FileNotFoundError: a folder without `saved_model.pb`.
        ConnectionError: a handle whose host cannot be reached.
        ImportError: a handle without `tensorflow_hub` installed.

    Example:

    ```python
    folder = resolve_saved_model(
        "https://www.kaggle.com/models/google/mobilenet-v2/TensorFlow2/"
        "100-224-feature-vector/2")
    ```
    """
    from urllib.parse import urlparse

    from keras_tl._utils import presets

    handle = os.fspath(handle)
    if "://" not in handle:
        if not os.path.isfile(os.path.join(handle, "saved_model.pb")):
            raise FileNotFoundError(
                f"{handle!r} is not a SavedModel folder (it has no saved_model.pb). Pass "
                "a folder written by tf.saved_model.save or model.export(), or a TF Hub / "
                "Kaggle Models handle."
            )
        return handle
    host = _HUB_HOSTS.get(urlparse(handle).hostname or "")
    if host is None:
        raise ValueError(
            f"Unsupported SavedModel handle {handle!r}: use https://tfhub.dev/... or "
            "https://www.kaggle.com/models/..., or a local SavedModel folder."
        )
    reachable, error = presets.host_reachable(host)
    if not reachable:
        raise ConnectionError(
            f"Cannot download the SavedModel {handle!r}: {host} is unreachable ({error}). "
            "Offline: on a machine online, download it (tensorflow_hub.resolve(handle) "
            "prints the cached folder, or use the model page's download button), copy the "
            "folder here and pass its path as the backbone."
        )
    try:
        import tensorflow_hub
    except ImportError:
        raise ImportError(
            "Downloading a TF Hub or Kaggle handle needs tensorflow_hub: pip install "
            "'keras-tl[hub]', or pass a downloaded SavedModel folder."
        ) from None
    return tensorflow_hub.resolve(handle)


def _require_tensorflow():
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "A SavedModel backbone runs TensorFlow graphs: it needs "
            f"KERAS_BACKEND=tensorflow (the backend is {keras.backend.backend()!r}). On "
            "JAX or PyTorch, use the same network from Keras Applications or KerasHub "
            "(keras_tl.list_backbones('all'))."
        )


@keras.saving.register_keras_serializable(package="keras_tl")
class SavedModelBackbone(keras.layers.Layer):
    """A TensorFlow SavedModel as a Keras 3 layer (see the module docstring).

    Args:
        handle: a SavedModel folder, a TF Hub or Kaggle Models handle, or an
            object returned by `tf.saved_model.load` / `hub.load`. `None`
            when the layer is being loaded from a `.keras` file (its
            SavedModel then comes from the file's assets).
        signature: the serving signature used when the SavedModel is not
            callable (Keras' `model.export()` writes `"serve"`; TF's
            default is `"serving_default"`): `None` picks the first one.
        output_key: the signature's output to return, when it has several.
        train_batchnorm: let `training=True` reach the graph (BatchNorm
            batch statistics) when the layer is trainable.
        source: where the SavedModel came from (informational, saved in
            the config).
        output_shape: the output shape without the batch dimension (set
            from a first call; stored in the config).
        **kwargs: `keras.layers.Layer` arguments (`trainable`, `name`).

    Example:

    ```python
    features = SavedModelBackbone("path/to/saved_model", trainable=False)
    model = keras.Sequential([keras.Input((224, 224, 3)), features,
                              keras.layers.Dense(3, activation="softmax")])
    ```
    """

    def __init__(self, handle=None, signature=None, output_key=None, train_batchnorm=False,
                 source=None, output_shape=None, **kwargs):
        super().__init__(**kwargs)
        _require_tensorflow()
        self.signature = signature
        self.output_key = output_key
        self.train_batchnorm = bool(train_batchnorm)
        self.source = source
        self._feature_shape = tuple(output_shape) if output_shape is not None else None
        self._module = None
        self._folder = None
        self._reusable = False
        if handle is not None:
            if isinstance(handle, (str, os.PathLike)):
                self.source = self.source or os.fspath(handle)
            self._attach(handle)

    def _attach(self, handle):
        """Loads the SavedModel and wraps its variables as this layer's."""
        import tensorflow as tf

        if _is_loaded_saved_model(handle):
            module = handle
            self._folder = None
        else:
            self._folder = resolve_saved_model(handle)
            module = tf.saved_model.load(self._folder)
        self._module = module
        self._reusable = callable(module) and hasattr(module, "trainable_variables")
        if not self._reusable and not module.signatures:
            raise ValueError(
                f"The SavedModel {self.source!r} is neither callable (TF Hub's reusable "
                "format) nor has a serving signature: nothing to call."
            )
        if not self._reusable and self.trainable:
            raise ValueError(
                f"The SavedModel {self.source!r} has only a serving signature (as "
                "model.export() writes): it can extract features but not be fine-tuned. Pass "
                "trainable=False, or a reusable SavedModel (TF Hub's format)."
            )
        trainable = {id(v) for v in getattr(module, "trainable_variables", ())}
        # Reloading from a `.keras` file attaches the SavedModel after the
        # layer was built (`load_assets` runs last): Keras locks a built
        # layer's state, so the wrapped variables are added unlocked.
        tracker = getattr(self, "_tracker", None)
        locked = tracker is not None and tracker.locked
        if locked:
            tracker.unlock()
        try:
            self._wrapped = []
            self._graph_names = []
            for variable in module.variables:
                self._graph_names.append(variable.name.split(":")[0])
                name = variable.name.split(":")[0].replace("/", "_")
                wrapped = keras.Variable(
                    initializer=variable, shape=variable.shape, dtype=variable.dtype.name,
                    trainable=id(variable) in trainable, name=name,
                )
                self._track_variable(wrapped)
                self._wrapped.append(wrapped)
        finally:
            if locked:
                tracker.lock()

    def variable_groups(self):
        """The wrapped variables in the SavedModel's order, one list per
        graph layer (variables sharing a name scope, e.g. `conv1/kernel`
        and `conv1/bias`); a normalization layer's variables (`gamma`,
        `beta`, `moving_*`) join the layer before them, as `get_stages`
        keeps a convolution with its BatchNorm. Keras- and TF Hub-built
        SavedModels list their variables from the input to the output, so
        these are depth units for progressive unfreezing. Units with no
        trainable variable (a step counter) are left out."""
        # Keras lists trainable variables before non-trainable ones, so a
        # BatchNorm's moving statistics come last: units are keyed by scope.
        units, owner = {}, {}
        for variable, name in zip(self._wrapped, self._graph_names):
            scope, _, leaf = name.rpartition("/")
            if scope not in owner:
                if leaf in _NORMALIZATION_VARIABLES and units:
                    owner[scope] = next(reversed(units))
                else:
                    owner[scope] = scope
                    units[scope] = []
            units[owner[scope]].append(variable)
        units = list(units.values())
        trainable = {id(v) for v in self._trainable_variables}
        return [unit for unit in units if any(id(v) in trainable for v in unit)]

    def set_variables_trainable(self, variables, trainable):
        """Makes some of the SavedModel's variables trainable or frozen,
        leaving the others as they are (one stage of progressive
        unfreezing). Variables the SavedModel marks non-trainable (moving
        statistics) stay frozen."""
        chosen = {id(v) for v in variables}
        trainable = bool(trainable)
        if trainable and not self._trainable:
            # Switching the layer on must not switch on the other stages.
            for variable in self._trainable_variables:
                variable.trainable = False
            self._trainable = True
        for variable in self._trainable_variables:
            if id(variable) in chosen:
                variable.trainable = trainable
        if not any(v.trainable for v in self._trainable_variables):
            self._trainable = False

    @property
    def reusable(self):
        """Whether the SavedModel is in TF Hub's reusable format (callable,
        fine-tunable) rather than a serving signature alone."""
        return self._reusable

    def _signature_function(self):
        signatures = self._module.signatures
        name = self.signature or next(iter(signatures))
        if name not in signatures:
            raise ValueError(f"The SavedModel has no signature {name!r}; it has "
                             f"{sorted(signatures)}.")
        return signatures[name]

    def input_spec_of_graph(self):
        """`(shape, dtype)` of the graph's image input, batch included."""
        import tensorflow as tf

        if self._reusable:
            functions = getattr(self._module.__call__, "concrete_functions", None) or []
            for function in functions:
                specs = [s for s in tf.nest.flatten(function.structured_input_signature)
                         if isinstance(s, tf.TensorSpec)]
                if specs:
                    return tuple(specs[0].shape), specs[0].dtype
            return None, tf.float32
        specs = [s for s in tf.nest.flatten(
            self._signature_function().structured_input_signature) if isinstance(
                s, tf.TensorSpec)]
        return (tuple(specs[0].shape), specs[0].dtype) if specs else (None, tf.float32)

    def call(self, inputs, training=None):
        if self._module is None:
            raise ValueError("This SavedModelBackbone has no SavedModel yet: it is loaded "
                             "from a .keras file's assets, or pass a handle.")
        if self._reusable:
            # Frozen-BatchNorm rule: the graph runs in training mode only when
            # the layer trains and BatchNorm training was asked for.
            graph_training = bool(training) and self.trainable and self.train_batchnorm
            outputs = self._module(inputs, training=graph_training)
            if self.trainable and training:
                for loss in getattr(self._module, "regularization_losses", ()):
                    self.add_loss(loss())
        else:
            outputs = self._signature_function()(inputs)
        if isinstance(outputs, dict):
            key = self.output_key or sorted(outputs)[0]
            outputs = outputs[key]
        return outputs

    def build(self, input_shape):
        if self._feature_shape is None and self._module is not None:
            import tensorflow as tf

            shape = [1] + [d or 224 for d in tuple(input_shape)[1:]]
            outputs = self.call(tf.zeros(shape, self.compute_dtype), training=False)
            self._feature_shape = tuple(outputs.shape[1:])
        self.built = True

    def compute_output_shape(self, input_shape):
        if self._feature_shape is None:
            self.build(input_shape)
        return (input_shape[0],) + tuple(self._feature_shape)

    def get_config(self):
        config = super().get_config()
        config.update(signature=self.signature, output_key=self.output_key,
                      train_batchnorm=self.train_batchnorm, source=self.source,
                      output_shape=list(self._feature_shape) if self._feature_shape else None)
        return config

    @classmethod
    def from_config(cls, config):
        from keras.src.saving import serialization_lib

        if serialization_lib.in_safe_mode():
            raise ValueError(
                "This model holds a TensorFlow SavedModel (keras_tl.SavedModelBackbone): its "
                "graph is code, which Keras does not load under safe_mode=True. For a file "
                "you trust, load it with keras.saving.load_model(path, safe_mode=False)."
            )
        return cls(**config)

    # The variables live in the SavedModel written to the assets: stored once.
    def save_own_variables(self, store):
        pass

    def load_own_variables(self, store):
        pass

    def save_assets(self, dir_path):
        import tensorflow as tf

        # Written from the live objects: the wrapped variables share their
        # storage, so the file holds the trained values.
        tf.saved_model.save(self._module, os.path.join(dir_path, "saved_model"))

    def load_assets(self, dir_path):
        folder = os.path.join(dir_path, "saved_model")
        # The assets folder is temporary: keep a copy the graph can read
        # (saving the model again copies its asset files). The copy goes
        # with this layer, or when Python exits, so reloads leave nothing
        # behind in the temporary folder.
        import tempfile
        import weakref

        keep = tempfile.mkdtemp(prefix="keras_tl_saved_model_")
        weakref.finalize(self, shutil.rmtree, keep, ignore_errors=True)
        shutil.copytree(folder, keep, dirs_exist_ok=True)
        self._attach(keep)


def build_saved_model_backbone(handle, input_shape=None, trainable=False,
                               train_batchnorm=False, pixel_scale="auto"):
    """A feature extractor from raw [0, 255] images over a SavedModel.

    TF Hub image models take float images in [0, 1] at a fixed size: the
    size is read from the graph's input signature (224x224 when it leaves
    it open) and a `Rescaling` (and a `Resizing` when `input_shape` differs)
    goes in front, so users keep feeding raw pixels as with every keras-tl
    backbone.

    Args:
        handle: what `SavedModelBackbone` takes.
        input_shape: `(height, width, 3)` of the images fed; default: the
            graph's own size.
        trainable: whether the SavedModel's variables train.
        train_batchnorm: see `SavedModelBackbone`.
        pixel_scale: factor from [0, 255] pixels to what the graph expects.
            `"auto"`: `1/255` for a reusable SavedModel (TF Hub's convention
            for image models: floats in [0, 1]) and `1.0` for a graph with
            only a serving signature (what `model.export()` writes from a
            Keras model, whose preprocessing is inside, as keras-tl's and
            most Keras Applications' are). Pass a number when the model's
            page says otherwise.

    Returns:
        A `keras.Model` from images to features, named `saved_model_backbone`.

    Example:

    ```python
    backbone = build_saved_model_backbone("https://tfhub.dev/google/imagenet/"
                                          "mobilenet_v2_100_224/feature_vector/5")
    ```
    """
    layer = SavedModelBackbone(handle, trainable=trainable, train_batchnorm=train_batchnorm,
                               name="saved_model")
    if pixel_scale == "auto":
        pixel_scale = 1.0 / 255.0 if layer.reusable else 1.0
    graph_shape, _ = layer.input_spec_of_graph()
    size = tuple(graph_shape[1:3]) if graph_shape and None not in graph_shape[1:3] \
        else DEFAULT_IMAGE_SIZE
    channels = graph_shape[3] if graph_shape and graph_shape[3] else 3
    input_shape = tuple(input_shape) if input_shape is not None else size + (channels,)
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if tuple(input_shape[:2]) != size:
        x = keras.layers.Resizing(*size, name="resize")(x)
    if pixel_scale != 1.0:
        x = keras.layers.Rescaling(pixel_scale, name="preprocessing")(x)
    x = layer(x)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name="saved_model_backbone")
