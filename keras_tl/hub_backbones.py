"""KerasHub image backbones in the zoo: ViT, DeiT, DINOv2/v3, SigLIP, CLIP, CNNs.

A KerasHub image preset (a built-in name such as `"dinov2_small"`, an
`hf://` handle, or a local folder written by `Backbone.save_to_preset` and
`ImageConverter.save_to_preset`) becomes a feature extractor that takes raw
[0, 255] RGB images, like the Keras Applications networks of
`keras_tl.backbones`:

    Input -> [Resizing] -> preprocessing -> <KerasHub backbone> -> pooling

- The preset's own weights are loaded.
- The preset's `ImageConverter` gives the preprocessing: its `scale` and
  `offset` (`x * scale + offset`, per channel where the preset says so)
  become a `keras.layers.Rescaling` named `"preprocessing"`, and its
  resizing a `keras.layers.Resizing` when the input size differs from the
  size a transformer's position embeddings were made for. Both are plain
  Keras layers: the model saves, reloads with `safe_mode=True` and converts
  to LiteRT without the converter (a KerasHub data-pipeline layer).
- Features are pooled per family (`HUB_FAMILIES`): the class token for ViT,
  DeiT and CLIP (what their classifiers read; ViT built without a class
  token averages its patch tokens), the class token concatenated with the
  mean of the patch tokens for DINOv2/v3 (the DINOv2 paper's linear
  evaluation), SigLIP's own attention-pooling head, and global average
  pooling for CNN families.

`keras_tl.get_stages` splits the transformer families into the patch
embedding, one stage per transformer block and the final norm.
"""

from __future__ import annotations

import dataclasses
import os

import keras

from keras_tl._utils.presets import resolve_preset
from keras_tl.pooling import TOKEN_POOLINGS
from keras_tl.pooling import TokenPooling

__all__ = [
    "HUB_FAMILIES",
    "HubFamily",
    "build_hub_backbone",
    "find_hub_network",
    "hub_family",
    "is_hub_preset",
    "list_hub_presets",
    "load_image_preset",
]


@dataclasses.dataclass(frozen=True)
class HubFamily:
    """What keras-tl knows about one KerasHub image backbone family.

    Args:
        name: the family's short name, e.g. `"vit"`.
        backbone_classes: the `keras_hub.models` class names of the family's
            backbones; the first is the class its presets load.
        kind: `"transformer"` (staged by blocks, layer-wise rate decay) or
            `"cnn"` (staged by depth groups, ULMFiT's rate factor).
        pooling: the default feature pooling: `"token"`, `"mean"`,
            `"token_mean"` (see `keras_tl.pooling.TokenPooling`), `"model"`
            (the network's own pooled output) or `"avg"` (global average
            pooling of the last feature map).
        vision_tower: for dual image-text presets (SigLIP, CLIP), the
            attribute of the preset's backbone holding the image encoder.

    Example:

    >>> HUB_FAMILIES["dinov2"].pooling
    'token_mean'
    """

    name: str
    backbone_classes: tuple
    kind: str
    pooling: str
    vision_tower: str | None = None


_FAMILIES = (
    HubFamily("vit", ("ViTBackbone",), "transformer", "token"),
    HubFamily("deit", ("DeiTBackbone",), "transformer", "token"),
    HubFamily("dinov2", ("DINOV2Backbone",), "transformer", "token_mean"),
    HubFamily("dinov3", ("DINOV3Backbone",), "transformer", "token_mean"),
    HubFamily(
        "siglip", ("SigLIPBackbone", "SigLIPVisionEncoder"), "transformer", "model",
        vision_tower="vision_encoder",
    ),
    HubFamily(
        "clip", ("CLIPBackbone", "CLIPVisionEncoder"), "transformer", "token",
        vision_tower="vision_encoder",
    ),
    HubFamily("resnet", ("ResNetBackbone",), "cnn", "avg"),
    HubFamily("efficientnet", ("EfficientNetBackbone",), "cnn", "avg"),
    HubFamily("mobilenet", ("MobileNetBackbone",), "cnn", "avg"),
    HubFamily("hgnetv2", ("HGNetV2Backbone",), "cnn", "avg"),
    HubFamily("cspnet", ("CSPNetBackbone",), "cnn", "avg"),
    HubFamily("densenet", ("DenseNetBackbone",), "cnn", "avg"),
    HubFamily("vgg", ("VGGBackbone",), "cnn", "avg"),
    HubFamily("xception", ("XceptionBackbone",), "cnn", "avg"),
)

HUB_FAMILIES = {family.name: family for family in _FAMILIES}
_BY_CLASS = {cls: family for family in _FAMILIES for cls in family.backbone_classes}

_CNN_POOLINGS = ("avg", "max")


def hub_family(backbone) -> HubFamily | None:
    """The `HubFamily` of a KerasHub backbone (or of its class), or `None`.

    Args:
        backbone: a `keras_hub.models.Backbone` instance or class.

    Example:

    ```python
    hub_family(keras_hub.models.Backbone.from_preset("dinov2_small")).name
    # -> 'dinov2'
    ```
    """
    cls = backbone if isinstance(backbone, type) else type(backbone)
    for klass in cls.__mro__:
        if klass.__name__ in _BY_CLASS:
            return _BY_CLASS[klass.__name__]
    return None


def list_hub_presets(family: str | None = None) -> list:
    """The KerasHub built-in image presets keras-tl builds as backbones.

    Read from the installed KerasHub's preset registry (no network); the
    weights of a built-in preset are downloaded on first use.

    Args:
        family: a `HUB_FAMILIES` name to list only that family's presets.

    Returns:
        A sorted list of preset names.

    Example:

    >>> "dinov2_small" in list_hub_presets("dinov2")
    True
    """
    import keras_hub

    if family is not None and family not in HUB_FAMILIES:
        raise ValueError(
            f"Unknown KerasHub family {family!r}; expected one of {sorted(HUB_FAMILIES)}."
        )
    families = [HUB_FAMILIES[family]] if family else _FAMILIES
    names = set()
    for fam in families:
        cls = getattr(keras_hub.models, fam.backbone_classes[0], None)
        if cls is not None:
            names.update(cls.presets.keys())
    return sorted(names)


def is_hub_preset(name) -> bool:
    """Whether `name` reads as a KerasHub image preset (no network used).

    True for an `hf://`, `kaggle://` or `modelscope://` handle, a folder
    holding a `config.json`, and the built-in names of `list_hub_presets()`.

    Args:
        name: a string (or path).

    Example:

    >>> is_hub_preset("hf://timm/resnet18.a1_in1k"), is_hub_preset("resnet50")
    (True, False)
    """
    if not isinstance(name, (str, os.PathLike)):
        return False
    name = os.fspath(name)
    if "://" in name:
        return name.split("://", 1)[0] in ("hf", "kaggle", "modelscope")
    if os.path.isdir(name):
        return os.path.isfile(os.path.join(name, "config.json"))
    return name in set(list_hub_presets())


def _offline_message(preset, reason):
    return (
        f"Cannot fetch image preset {preset!r}: {reason}. Without network access, "
        "pass a local preset folder instead: on a machine online, run "
        f"`keras_hub.models.Backbone.from_preset({preset!r}).save_to_preset(d)` and "
        f"`keras_hub.layers.ImageConverter.from_preset({preset!r}).save_to_preset(d)`, "
        "copy the folder `d` here and pass its path."
    )


def _resolve(preset):
    """What KerasHub should load: a local folder, or a reachable remote handle."""
    return resolve_preset(
        preset, kind="image", known_names=list_hub_presets,
        unknown_hint=("`keras_tl.list_backbones('all')` lists Keras Applications and "
                      "KerasHub names."),
        folder_hint=("A preset folder is one written by KerasHub's Backbone.save_to_preset "
                     "(plus ImageConverter.save_to_preset for the preprocessing)."),
        offline_message=_offline_message,
    )


def load_image_preset(preset, load_weights: bool = True):
    """Loads a KerasHub image backbone and its image converter.

    For dual image-text presets (SigLIP, CLIP) the image encoder is
    returned. Remote presets are probed first, so a machine without network
    fails in seconds with advice on passing a local folder.

    Args:
        preset: a built-in name (`list_hub_presets()`), an `hf://` /
            `kaggle://` handle or a local preset folder.
        load_weights: load the preset's weights (`False`: random init).

    Returns:
        `(backbone, converter)`: a `keras_hub.models.Backbone` and its
        `keras_hub.layers.ImageConverter`.

    Raises:
        ValueError: an unknown name, or a preset that is not an image
            backbone of a `HUB_FAMILIES` family.
        FileNotFoundError: a folder without config.json or without the
            image converter's config.
        ConnectionError: a remote preset with no network.

    Example:

    ```python
    backbone, converter = load_image_preset("models/dinov2_small")
    converter.scale, converter.image_size
    ```
    """
    import keras_hub

    preset = os.fspath(preset)
    source = _resolve(preset)
    try:
        backbone = keras_hub.models.Backbone.from_preset(source, load_weights=load_weights)
    except (ConnectionError, OSError) as error:
        if os.path.isdir(source):
            raise
        raise ConnectionError(_offline_message(preset, error)) from error
    family = hub_family(backbone)
    if family is None:
        raise ValueError(
            f"Preset {preset!r} loads a {type(backbone).__name__}, which keras-tl "
            f"does not use as an image backbone. Supported families: "
            + ", ".join(f"{f.name} ({f.backbone_classes[0]})" for f in _FAMILIES)
            + "."
        )
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(source)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"Preset {preset!r} has no image converter (image_converter.json), so "
            "the pixel scaling its weights expect is unknown. Save the converter "
            "into the folder with `ImageConverter.save_to_preset`."
        ) from error
    if family.vision_tower and hasattr(backbone, family.vision_tower):
        backbone = getattr(backbone, family.vision_tower)
    return backbone, converter


def _fixed_size(backbone):
    """The `(height, width)` a transformer's position embeddings were made
    for, or `None` when the network takes any size."""
    shape = backbone.input_shape
    if isinstance(shape, dict):
        shape = next(iter(shape.values()))
    height, width = shape[1], shape[2]
    if height is None or width is None:
        return None
    return int(height), int(width)


def _num_prefix_tokens(family, backbone):
    if family.name == "vit":
        return 1 if getattr(backbone, "use_class_token", True) else 0
    if family.name == "deit":
        # The class token, then the distillation token.
        return 2
    if family.name in ("dinov2", "dinov3"):
        return 1 + int(getattr(backbone, "num_register_tokens", 0))
    return 1


def _pooling(family, backbone, pooling, features):
    """The pooling layer for a backbone's output, or `None`."""
    rank = len(features.shape)
    if pooling == "auto":
        pooling = family.pooling if family is not None else None
        if family is not None and family.name == "vit" and not _num_prefix_tokens(
            family, backbone
        ):
            pooling = "mean"
        if pooling is None:
            pooling = {3: "mean", 4: "avg"}.get(rank)
    if pooling in (None, "model") or rank == 2:
        if pooling not in (None, "model"):
            raise ValueError(
                f"{type(backbone).__name__} already outputs pooled features; pass "
                "pooling='auto' or None."
            )
        return None
    if rank == 4:
        if pooling == "avg":
            return keras.layers.GlobalAveragePooling2D(name="avg_pool")
        if pooling == "max":
            return keras.layers.GlobalMaxPooling2D(name="max_pool")
        raise ValueError(
            f"{type(backbone).__name__} outputs a feature map; pooling must be one of "
            f"{_CNN_POOLINGS}, 'auto' or None; got {pooling!r}."
        )
    if pooling not in TOKEN_POOLINGS:
        raise ValueError(
            f"{type(backbone).__name__} outputs tokens; pooling must be one of "
            f"{TOKEN_POOLINGS}, 'auto' or None; got {pooling!r}."
        )
    prefix = _num_prefix_tokens(family, backbone) if family is not None else 1
    return TokenPooling(pooling, num_prefix_tokens=prefix, name=f"{pooling}_pool")


def _sequence(outputs):
    """The backbone output to pool: its token sequence or last feature map."""
    if not isinstance(outputs, dict):
        return outputs
    for key in ("sequence_output", "image_embeddings"):
        if key in outputs:
            return outputs[key]
    maps = [value for value in outputs.values() if len(value.shape) == 4]
    if len(maps) != len(outputs):
        raise ValueError(f"Cannot tell the features among the outputs {sorted(outputs)}.")
    # Feature pyramids (HGNetV2): the deepest stage, the smallest map.
    def size(value):
        height, width = value.shape[1], value.shape[2]
        return (height or 0) * (width or 0), -(value.shape[-1] or 0)

    return min(maps, key=size) if all(m.shape[1] for m in maps) else maps[-1]


def _resize_input_shape(input_shape, default):
    if input_shape is None:
        if default is None:
            raise ValueError(
                "The preset sets no image size; pass input_shape=(height, width, 3)."
            )
        return (int(default[0]), int(default[1]), 3)
    input_shape = tuple(input_shape)
    if len(input_shape) == 2:
        input_shape = input_shape + (3,)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            "KerasHub image backbones take RGB images of shape (height, width, 3); "
            f"got input_shape={input_shape}. Convert grayscale images to 3 channels "
            "first (`keras_tl.data` does it for image folders)."
        )
    return input_shape


def build_hub_backbone(
    preset,
    weights="imagenet",
    input_shape=None,
    pooling="auto",
    trainable: bool = False,
    converter=None,
) -> keras.Model:
    """Builds a feature extractor on a KerasHub image backbone.

    The result is `Input -> [Resizing] -> Rescaling("preprocessing") ->
    <KerasHub backbone> -> pooling`: raw [0, 255] RGB images in, features
    out (see the module docstring for the pooling of each family).

    Args:
        preset: a built-in KerasHub image preset name, an `hf://` handle, a
            local preset folder, or a `keras_hub.models.Backbone` instance
            (then `converter` gives its preprocessing; without one the
            images reach the backbone unscaled).
        weights: `"imagenet"` (the default of `keras_tl.build_backbone`:
            here the preset's own pretrained weights) or `None` (random
            initialization).
        input_shape: `(height, width, 3)` of the model input; defaults to
            the size the preset was trained at. A transformer resizes other
            sizes to its own inside the model; a CNN runs at the size given.
        pooling: `"auto"` (the family's default), `"token"`, `"mean"`,
            `"token_mean"` (transformers), `"avg"`, `"max"` (CNNs), or
            `None` (keep tokens or the feature map).
        trainable: whether the backbone's weights start trainable.
        converter: a `keras_hub.layers.ImageConverter` for a backbone
            instance (presets bring their own).

    Returns:
        A `keras.Model` named `<family>_backbone`.

    Example:

    ```python
    features = build_hub_backbone("models/vit_tiny", input_shape=(28, 28, 3))
    features.output.shape  # -> (None, 192)
    ```
    """
    import keras_hub

    if isinstance(preset, keras_hub.models.Backbone):
        backbone = preset
        family = hub_family(backbone)
        if family is not None and family.vision_tower and hasattr(backbone, family.vision_tower):
            backbone = getattr(backbone, family.vision_tower)
    else:
        if weights not in ("imagenet", None):
            raise ValueError(
                "A KerasHub preset brings its own weights: pass weights='imagenet' "
                f"(the preset's) or None (random initialization); got {weights!r}."
            )
        backbone, converter = load_image_preset(preset, load_weights=weights is not None)
        family = hub_family(backbone)
    fixed = _fixed_size(backbone)
    native = fixed or (tuple(converter.image_size) if converter is not None
                       and converter.image_size is not None else None)
    input_shape = _resize_input_shape(input_shape, native)

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if fixed is not None and tuple(input_shape[:2]) != fixed:
        # Position embeddings exist for one grid of patches only.
        x = keras.layers.Resizing(
            fixed[0], fixed[1],
            interpolation=getattr(converter, "interpolation", "bilinear"),
            crop_to_aspect_ratio=bool(getattr(converter, "crop_to_aspect_ratio", False)),
            antialias=bool(getattr(converter, "antialias", False)),
            name="resizing",
        )(x)
    scale = getattr(converter, "scale", None)
    offset = getattr(converter, "offset", None)
    x = keras.layers.Rescaling(
        scale=1.0 if scale is None else _plain(scale),
        offset=0.0 if offset is None else _plain(offset),
        name="preprocessing",
    )(x)
    if isinstance(backbone.input, dict):
        # DINOv2/v3 and the SigLIP/CLIP towers name their image input.
        x = {name: x for name in backbone.input}
    features = _sequence(backbone(x))
    pool = _pooling(family, backbone, pooling, features)
    if pool is not None:
        features = pool(features)
    name = f"{family.name if family else backbone.name}_backbone"
    model = keras.Model(inputs, features, name=name)
    model.trainable = trainable
    return model


def _plain(value):
    """A converter's scale/offset as a float or list of floats (serializable)."""
    if isinstance(value, (int, float)):
        return float(value)
    return [float(v) for v in value]


def find_hub_network(model):
    """Returns `(family, backbone)` for the KerasHub image backbone nested in
    `model`, or `(None, None)`.

    Args:
        model: a `keras.Model`, e.g. one built by `build_hub_backbone`, a
            classifier containing one, or a KerasHub backbone itself.

    Example:

    ```python
    family, network = find_hub_network(model)
    family.name, type(network).__name__  # -> ('vit', 'ViTBackbone')
    ```
    """
    family = hub_family(model)
    if family is not None:
        return family, model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = find_hub_network(layer)
            if found[0] is not None:
                return found
    return None, None
