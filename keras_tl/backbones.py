"""The backbone zoo: every Keras Applications family by a short name, and
KerasHub image presets.

Each Keras Applications entry knows how to build the network, the
preprocessing it was trained with, its default and minimum input size, its
feature dimension and its stages (the named blocks that fine-tuning unfreezes
from the top down). Any other name that reads as a KerasHub image preset (a
built-in name, an `hf://` handle or a local preset folder) is built by
`keras_tl.hub_backbones`: ViT, DeiT, DINOv2/v3, SigLIP, CLIP and KerasHub's
CNN families.
"""

import dataclasses
import difflib
import os
import re

import keras

from keras_tl import hub_backbones
from keras_tl._utils.distribute import check_created_in_scope
from keras_tl.preprocessing import ImagePreprocessing

__all__ = [
    "BACKBONE_SOURCES",
    "weights_download_message",
    "ZOO",
    "BackboneSpec",
    "backbone_source",
    "build_backbone",
    "build_small_cnn",
    "find_zoo_network",
    "get_spec",
    "list_backbones",
]


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What keras-tl knows about one pretrained backbone.

    Args:
        name: the short zoo name, e.g. `"resnet50"`.
        constructor: the `keras.applications` function name, e.g.
            `"ResNet50"`.
        preprocessing: an `ImagePreprocessing` mode (`"caffe"`, `"tf"`,
            `"torch"`, `"none"`).
        default_size: the input side the ImageNet weights were trained at.
        min_size: the smallest input side the architecture accepts.
        feature_dim: the width of the globally pooled features.
        stages: `(stage_name, end_pattern)` pairs from the input to the
            output. A stage runs from the layer after the previous stage's
            end to the last layer whose name fully matches `end_pattern`;
            `None` means "to the last layer".
        network_name: name given to the nested network when the constructor
            needs a specific one (EfficientNetV2 looks its blocks up by
            name); defaults to `name`.

    Example:

    >>> get_spec("resnet50").feature_dim
    2048
    """

    name: str
    constructor: str
    preprocessing: str
    default_size: int
    min_size: int
    feature_dim: int
    stages: tuple
    network_name: str = None

    @property
    def layer_name(self):
        """Name of the nested Keras Applications network in built models."""
        return self.network_name or self.name

    @property
    def stage_names(self):
        return tuple(name for name, _ in self.stages)


def _spec(name, constructor, preprocessing, default_size, min_size, dim, stages,
          network_name=None):
    return BackboneSpec(
        name, constructor, preprocessing, default_size, min_size, dim, tuple(stages),
        network_name,
    )


_RESNET_STAGES = [
    ("conv1", r"pool1_pool"),
    ("conv2", r"conv2_.*"),
    ("conv3", r"conv3_.*"),
    ("conv4", r"conv4_.*"),
    ("conv5", None),
]
_VGG_STAGES = [(f"block{i}", rf"block{i}_pool") for i in range(1, 5)] + [
    ("block5", None)
]
_EFFICIENTNET_STAGES = [
    ("stem_block2", r"block[12].*"),
    ("block3_4", r"block[34].*"),
    ("block5_6", r"block[56].*"),
    ("block7_top", None),
]
_EFFICIENTNET_V2_STAGES = [
    ("stem_block2", r"block[12].*"),
    ("block3_4", r"block[34].*"),
    ("block5_top", None),
]
_DENSENET_STAGES = [
    ("conv1_2", r"pool2_pool"),
    ("conv3", r"pool3_pool"),
    ("conv4", r"pool4_pool"),
    ("conv5", None),
]
_CONVNEXT_STAGES = [(f"stage{i}", rf".*_stage_{i}_.*") for i in range(3)] + [
    ("stage3", None)
]


def _nasnet_stages(num_blocks):
    return [
        ("stem", r"reduction_concat_stem_2"),
        ("cells1", rf"reduction_concat_reduce_{num_blocks}"),
        ("cells2", rf"reduction_concat_reduce_{2 * num_blocks}"),
        ("cells3", None),
    ]


_EFFICIENTNET_B = [
    (224, 1280),
    (240, 1280),
    (260, 1408),
    (300, 1536),
    (380, 1792),
    (456, 2048),
    (528, 2304),
    (600, 2560),
]
_EFFICIENTNET_V2 = {
    "b0": (224, 1280),
    "b1": (240, 1280),
    "b2": (260, 1408),
    "b3": (300, 1536),
    "s": (384, 1280),
    "m": (480, 1280),
    "l": (480, 1280),
}
_CONVNEXT = {
    "tiny": 768,
    "small": 768,
    "base": 1024,
    "large": 1536,
    "xlarge": 2048,
}

_SPECS = [
    _spec("vgg16", "VGG16", "caffe", 224, 32, 512, _VGG_STAGES),
    _spec("vgg19", "VGG19", "caffe", 224, 32, 512, _VGG_STAGES),
    _spec("resnet50", "ResNet50", "caffe", 224, 32, 2048, _RESNET_STAGES),
    _spec("resnet101", "ResNet101", "caffe", 224, 32, 2048, _RESNET_STAGES),
    _spec("resnet152", "ResNet152", "caffe", 224, 32, 2048, _RESNET_STAGES),
    _spec("resnet50_v2", "ResNet50V2", "tf", 224, 32, 2048, _RESNET_STAGES),
    _spec("resnet101_v2", "ResNet101V2", "tf", 224, 32, 2048, _RESNET_STAGES),
    _spec("resnet152_v2", "ResNet152V2", "tf", 224, 32, 2048, _RESNET_STAGES),
    _spec(
        "inception_v3",
        "InceptionV3",
        "tf",
        299,
        75,
        2048,
        [("mixed0_2", r"mixed2"), ("mixed3_7", r"mixed7"), ("mixed8_10", None)],
    ),
    _spec(
        "inception_resnet_v2",
        "InceptionResNetV2",
        "tf",
        299,
        75,
        1536,
        [
            ("stem", r"mixed_5b"),
            ("block35", r"block35_.*"),
            ("block17", r"block17_.*"),
            ("block8", None),
        ],
    ),
    _spec(
        "xception",
        "Xception",
        "tf",
        299,
        71,
        2048,
        [
            ("entry_flow", r"block4_pool"),
            ("middle_flow", r"block12_sepconv3_bn"),
            ("exit_flow", None),
        ],
    ),
    _spec(
        "mobilenet",
        "MobileNet",
        "tf",
        224,
        32,
        1024,
        [
            ("conv1_pw3", r"conv_pw_3_relu"),
            ("pw4_5", r"conv_pw_5_relu"),
            ("pw6_11", r"conv_pw_11_relu"),
            ("pw12_13", None),
        ],
    ),
    _spec(
        "mobilenet_v2",
        "MobileNetV2",
        "tf",
        224,
        32,
        1280,
        [
            ("block0_2", r"block_2_add"),
            ("block3_5", r"block_5_add"),
            ("block6_12", r"block_12_add"),
            ("block13_top", None),
        ],
    ),
    _spec(
        "mobilenet_v3_small",
        "MobileNetV3Small",
        "none",
        224,
        32,
        576,
        [
            ("block0_2", r"expanded_conv_2_add"),
            ("block3_5", r"expanded_conv_5_add"),
            ("block6_7", r"expanded_conv_7_add"),
            ("block8_top", None),
        ],
    ),
    _spec(
        "mobilenet_v3_large",
        "MobileNetV3Large",
        "none",
        224,
        32,
        960,
        [
            ("block0_2", r"expanded_conv_2_add"),
            ("block3_5", r"expanded_conv_5_add"),
            ("block6_11", r"expanded_conv_11_add"),
            ("block12_top", None),
        ],
    ),
    *[
        _spec(
            f"efficientnet_b{i}",
            f"EfficientNetB{i}",
            "none",
            size,
            32,
            dim,
            _EFFICIENTNET_STAGES,
        )
        for i, (size, dim) in enumerate(_EFFICIENTNET_B)
    ],
    *[
        _spec(
            f"efficientnet_v2_{v}",
            f"EfficientNetV2{v.upper()}",
            "none",
            size,
            32,
            dim,
            _EFFICIENTNET_V2_STAGES,
            network_name=f"efficientnetv2-{v}",
        )
        for v, (size, dim) in _EFFICIENTNET_V2.items()
    ],
    *[
        _spec(
            f"convnext_{v}",
            f"ConvNeXt{v.capitalize() if v != 'xlarge' else 'XLarge'}",
            "none",
            224,
            32,
            dim,
            _CONVNEXT_STAGES,
        )
        for v, dim in _CONVNEXT.items()
    ],
    _spec("densenet121", "DenseNet121", "torch", 224, 32, 1024, _DENSENET_STAGES),
    _spec("densenet169", "DenseNet169", "torch", 224, 32, 1664, _DENSENET_STAGES),
    _spec("densenet201", "DenseNet201", "torch", 224, 32, 1920, _DENSENET_STAGES),
    _spec("nasnet_mobile", "NASNetMobile", "tf", 224, 32, 1056, _nasnet_stages(4)),
    _spec("nasnet_large", "NASNetLarge", "tf", 331, 32, 4032, _nasnet_stages(6)),
]

ZOO = {spec.name: spec for spec in _SPECS}
_BY_LAYER_NAME = {spec.layer_name: spec for spec in _SPECS}


BACKBONE_SOURCES = ("keras_applications", "keras_hub", "text", "all")


def list_backbones(source="keras_applications"):
    """Returns the names `build_backbone` (and every recipe) accepts.

    Args:
        source: `"keras_applications"` (default): the zoo's short names;
            `"keras_hub"`: the built-in KerasHub image presets of the
            families in `keras_tl.hub_backbones.HUB_FAMILIES` (their weights
            download on first use; `hf://` handles and local preset folders
            are accepted too); `"text"`: the KerasHub BERT-family text
            presets `keras_tl.recipes.text_classifier` takes
            (`keras_tl.text.list_text_presets`); `"all"`: the image
            backbones of both, Keras Applications first.

    Returns:
        A list of names (each part sorted).

    Example:

    >>> "resnet50" in list_backbones()
    True
    >>> "dinov2_small" in list_backbones("keras_hub")
    True
    >>> "bert_base_multi" in list_backbones("text")
    True
    """
    if source not in BACKBONE_SOURCES:
        raise ValueError(f"source must be one of {BACKBONE_SOURCES}; got {source!r}.")
    if source == "text":
        from keras_tl.text import list_text_presets

        return list_text_presets()
    names = []
    if source in ("keras_applications", "all"):
        names += sorted(ZOO)
    if source in ("keras_hub", "all"):
        names += hub_backbones.list_hub_presets()
    return names


def get_spec(name):
    """Returns the `BackboneSpec` of a zoo name.

    Args:
        name: a zoo name such as `"resnet50"`; case, dashes and spaces are
            forgiven (`"ResNet-50"` works).

    Raises:
        ValueError: for an unknown name; the message lists close matches.

    Example:

    >>> get_spec("MobileNet-V2").min_size
    32
    """
    key = _normalize_name(name)
    if key in ZOO:
        return ZOO[key]
    compact = {n.replace("_", ""): n for n in ZOO}
    if key.replace("_", "") in compact:
        return ZOO[compact[key.replace("_", "")]]
    close = difflib.get_close_matches(key, list(ZOO), n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"Unknown backbone {name!r}.{hint} `keras_tl.list_backbones()` lists "
        "every Keras Applications name and `list_backbones('keras_hub')` the "
        "KerasHub image presets; a local KerasHub preset folder, an hf:// "
        "handle or any `keras.Model` may also be passed instead of a name."
    )


def backbone_source(backbone):
    """Where `build_backbone` takes a backbone from.

    A folder or an `hf://`-style handle is a KerasHub preset even when its
    name is also a zoo name; a bare name is looked up in the Keras
    Applications zoo first, then among KerasHub's built-in image presets.

    Args:
        backbone: a name, a preset folder or handle, or a `keras.Model`.

    Returns:
        `"keras_applications"`, `"keras_hub"`, `"model"` (a `keras.Model`
        or a `.keras` file), `"saved_model"` (a SavedModel folder, TF Hub
        or Kaggle handle, or a loaded SavedModel) or `"unknown"`.

    Example:

    >>> backbone_source("resnet50"), backbone_source("hf://timm/resnet18.a1_in1k")
    ('keras_applications', 'keras_hub')
    """
    if isinstance(backbone, keras.Model):
        return "model"
    if isinstance(backbone, os.PathLike):
        backbone = os.fspath(backbone)
    if isinstance(backbone, str) and backbone.endswith(".keras"):
        return "model"
    from keras_tl import saved_model_backbone

    if saved_model_backbone.is_saved_model(backbone):
        return "saved_model"
    if not isinstance(backbone, str):
        return "unknown"
    if os.path.isdir(backbone) or "://" in backbone:
        return "keras_hub"
    if _is_zoo_name(backbone):
        return "keras_applications"
    if hub_backbones.is_hub_preset(backbone):
        return "keras_hub"
    return "unknown"


def _is_zoo_name(name):
    try:
        get_spec(name)
    except ValueError:
        return False
    return True


def _normalize_name(name):
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _resolve_input_shape(spec, input_shape):
    if input_shape is None:
        return (spec.default_size, spec.default_size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) == 2:
        input_shape = input_shape + (3,)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            f"{spec.name} takes RGB images of shape (height, width, 3); got "
            f"input_shape={input_shape}. Convert grayscale images to 3 "
            "channels first (`keras_tl.data` does it for image folders)."
        )
    height, width = input_shape[:2]
    if height is not None and width is not None:
        if min(height, width) < spec.min_size:
            raise ValueError(
                f"input_shape={input_shape} is too small for {spec.name}: its "
                f"minimum input size is {spec.min_size}x{spec.min_size} "
                f"(default {spec.default_size}x{spec.default_size}). Resize "
                "the images, e.g. with `image_size=` in `keras_tl.data`."
            )
    return input_shape


def _load_backbone_file(path):
    """A saved `.keras` model as a backbone: your own pretrained network."""
    import zipfile

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Backbone file {path!r} does not exist.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a readable .keras file (a .keras file is a zip archive): it "
            "may be truncated or corrupt.")
    return keras.saving.load_model(path, compile=False)


def weights_download_message(name, constructor, error):
    """One line on a failed download of ImageNet weights: what was asked,
    why it failed, and how to work offline."""
    reason = " ".join(str(error).split())
    url = next((word.rstrip(":") for word in reason.split() if word.startswith("http")), None)
    reason = reason.split(" -- ", 1)[-1] if " -- " in reason else reason
    return (
        f"Cannot download the ImageNet weights of {name!r}"
        + (f" from {url}" if url else "")
        + f" ({reason}). Offline: on a machine online, run "
        f"keras.applications.{constructor}(include_top=False, weights='imagenet') once and "
        "copy ~/.keras/models/ here (Keras reads its cache first), or pass "
        "weights='path/to/weights.h5', or weights=None to start from random weights."
    )


def build_backbone(
    backbone, weights="imagenet", input_shape=None, pooling="auto", trainable=False
):
    """Builds a feature extractor that takes raw [0, 255] images.

    For a zoo name the result is `Input -> ImagePreprocessing -> <backbone>
    -> pooling`, where the Keras Applications network is one nested layer
    named after the zoo entry (so `get_stages` finds its stages again after a
    save and reload). A KerasHub image preset (built-in name, `hf://`
    handle or local preset folder) is built by
    `keras_tl.hub_backbones.build_hub_backbone`: the preset's weights, its
    image converter's scaling as the preprocessing layer, features pooled
    per family. A `keras.Model` is returned as is, with global average
    pooling added when it outputs a feature map (a KerasHub backbone's
    tokens are pooled as its family's presets are).

    Args:
        backbone: a zoo name (see `list_backbones()`), a KerasHub image
            preset (`list_backbones("keras_hub")`, `"hf://..."` or a preset
            folder), a `keras.Model`, or the path of a saved `.keras` model
            (your own pretrained network, from images to features).
        weights: `"imagenet"` (downloaded by Keras and cached in
            `~/.keras/models`; for a KerasHub preset, the preset's own
            weights), `None` (random initialization), or the path of a local
            weights file for the Keras Applications network without its top.
        input_shape: `(height, width, 3)`; defaults to the size the weights
            were trained at.
        pooling: `"auto"` (global average pooling; a KerasHub preset's
            family default, see `keras_tl.hub_backbones`), `"avg"`, `"max"`,
            the token poolings `"token"`, `"mean"`, `"token_mean"` of a
            KerasHub transformer, or `None` (keep the feature map or tokens).
        trainable: whether the backbone's weights start trainable. Feature
            extraction keeps them frozen.

    Returns:
        A `keras.Model` mapping images to features.

    Example:

    >>> model = build_backbone("mobilenet_v3_small", weights=None,
    ...                        input_shape=(32, 32, 3))
    >>> model.output.shape
    (None, 576)
    """
    if isinstance(backbone, keras.Model):
        if hub_backbones.hub_family(backbone) is not None:
            return hub_backbones.build_hub_backbone(
                backbone, input_shape=input_shape, pooling=pooling, trainable=trainable
            )
        check_created_in_scope(backbone)
        model = backbone
        if len(model.output.shape) == 4 and pooling:
            pool = _pooling_layer("avg" if pooling == "auto" else pooling)
            model = keras.Model(model.input, pool(model.output), name=model.name)
        model.trainable = trainable
        return model
    if isinstance(backbone, os.PathLike):
        backbone = os.fspath(backbone)
    if isinstance(backbone, str) and backbone.endswith(".keras"):
        return build_backbone(_load_backbone_file(backbone), input_shape=input_shape,
                              pooling=pooling, trainable=trainable)
    from keras_tl import saved_model_backbone

    if saved_model_backbone.is_saved_model(backbone):
        return saved_model_backbone.build_saved_model_backbone(
            backbone, input_shape=input_shape, trainable=trainable)
    if not isinstance(backbone, str):
        raise TypeError(
            "`backbone` must be a zoo name (see keras_tl.list_backbones()), a "
            f"KerasHub image preset or a keras.Model; got {type(backbone).__name__}."
        )
    if backbone_source(backbone) == "keras_hub":
        return hub_backbones.build_hub_backbone(
            backbone, weights=weights, input_shape=input_shape, pooling=pooling,
            trainable=trainable,
        )
    spec = get_spec(backbone)
    input_shape = _resolve_input_shape(spec, input_shape)
    weights_file = None
    if weights not in ("imagenet", None):
        weights_file = os.fspath(weights)
        if not os.path.exists(weights_file):
            raise FileNotFoundError(
                f"Weights file {weights_file!r} does not exist. Pass "
                "weights='imagenet', weights=None or the path of a saved "
                "weights file for the network without its top."
            )
        weights = None
    constructor = getattr(keras.applications, spec.constructor)
    try:
        base = constructor(
            include_top=False,
            weights=weights,
            input_shape=input_shape,
            name=spec.layer_name,
        )
    except Exception as error:
        if weights != "imagenet" or "URL fetch failure" not in str(error):
            raise
        raise ConnectionError(weights_download_message(backbone, spec.constructor, error)) from None
    if weights_file is not None:
        base.load_weights(weights_file)
    inputs = keras.Input(shape=input_shape, name="image")
    x = ImagePreprocessing(spec.preprocessing, name="preprocessing")(inputs)
    x = base(x)
    if pooling:
        x = _pooling_layer("avg" if pooling == "auto" else pooling)(x)
    model = keras.Model(inputs, x, name=f"{spec.name}_backbone")
    model.trainable = trainable
    return model


def _pooling_layer(pooling):
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")
    raise ValueError(f"pooling must be 'avg', 'max' or None; got {pooling!r}.")


def find_zoo_network(model):
    """Returns `(spec, layer)` for the zoo network nested in `model`, or
    `(None, None)` when the model was not built from the zoo.

    Args:
        model: a `keras.Model`, e.g. one built by `build_backbone` or a full
            classifier that contains one.

    Example:

    >>> spec, net = find_zoo_network(build_backbone("vgg16", weights=None,
    ...                                             input_shape=(32, 32, 3)))
    >>> spec.name, net.name
    ('vgg16', 'vgg16')
    """
    for layer in _walk(model):
        if isinstance(layer, keras.Model) and layer.name in _BY_LAYER_NAME:
            return _BY_LAYER_NAME[layer.name], layer
    return None, None


def _walk(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer)


def build_small_cnn(input_shape=(28, 28, 1), num_classes=10, width=32, name="small_cnn"):
    """A small BatchNorm CNN to pretrain on a small source task.

    Three conv blocks (`block1` .. `block3`) and a 128-d `features` layer,
    then a softmax classifier. `build_backbone(keras.Model(model.input,
    model.get_layer("features").output))` reuses it as a backbone; it is
    the source network of `keras-tl demo` and the student in distillation
    examples.

    Args:
        input_shape: shape of one raw image in [0, 255].
        num_classes: number of output classes.
        width: filters of the first block (doubled in each later block).
        name: model name.

    Example:

    >>> model = build_small_cnn((28, 28, 1), 10)
    >>> model.get_layer("features").output.shape
    (None, 128)
    """
    layers = keras.layers
    input_shape = tuple(input_shape)
    if len(input_shape) == 2:
        input_shape = (*input_shape, 1)  # (height, width): grayscale, as for arrays
    # Height and width may be None (any size); the channels may not.
    if len(input_shape) != 3 or not all(
            (d is None and axis < 2) or (isinstance(d, int) and d >= 1)
            for axis, d in enumerate(input_shape)):
        raise ValueError(
            "input_shape must be (height, width, channels) with sizes >= 1 (height and width "
            f"may be None); got {input_shape!r}."
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = ImagePreprocessing("unit", name="preprocessing")(inputs)
    for block, filters in enumerate((width, width * 2, width * 4), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv")(x)
        # momentum 0.9: small source sets give few steps, and at 0.99 the moving
        # statistics would still be near their initial values after training.
        x = layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn")(x)
        x = layers.Activation("relu", name=f"block{block}_relu")(x)
        if block < 3:
            x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(128, activation="relu", name="features")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Activation("softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
