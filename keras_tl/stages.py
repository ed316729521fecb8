"""Stages: the groups of layers that fine-tuning unfreezes together.

A zoo backbone's stages come from its `BackboneSpec`; a KerasHub vision
transformer (ViT, DeiT, DINOv2/v3, SigLIP, CLIP) is split into its patch
embedding, one stage per transformer block and its final norm; any other
model's weighted layers are split by depth into `num_groups` contiguous
groups, or grouped by the layer-name prefixes the user gives.
"""

import dataclasses
import math
import re

import keras

from keras_tl._utils.layers import set_trainable
from keras_tl._utils.validation import leaf_layers
from keras_tl.backbones import find_zoo_network
from keras_tl.hub_backbones import find_hub_network
from keras_tl.saved_model_backbone import SavedModelBackbone

__all__ = [
    "UNFREEZE_RULES",
    "Stage",
    "check_unfreeze",
    "freeze",
    "get_stages",
    "is_transformer",
    "unfreeze_rule",
]

_NORMALIZATION_LAYERS = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)

# Names KerasHub gives the repeated blocks of its vision transformers: ViT and
# DeiT (`transformer_block_<i>`), DINOv2/v3 (`layers_<i>`), SigLIP and CLIP
# (`encoder_block_<i>`).
_BLOCK_NAME = re.compile(r"(?:.*_)?(?:transformer_block|layers|encoder_block)_(\d+)")


@dataclasses.dataclass
class Stage:
    """A named group of layers, listed from the input towards the output.

    Args:
        name: the stage's name, e.g. `"conv5"`.
        layers: the `keras.layers.Layer` objects in the stage.
        variables: for a stage that holds part of one layer's variables
            (a `keras_tl.SavedModelBackbone`, whose graph is one Keras
            layer), those variables; `None` when the stage holds whole
            layers.

    Example:

    ```python
    stages = get_stages(backbone)
    stages[-1].name, stages[-1].count_params() > 0  # -> ('conv5', True)
    ```
    """

    name: str
    layers: list
    variables: list = None

    def count_params(self):
        if self.variables is not None:
            return int(sum(math.prod(v.shape) for v in self.variables))
        return int(sum(layer.count_params() for layer in self.layers if layer.built))

    def set_trainable(self, trainable, train_batchnorm=False):
        """Makes the stage trainable or frozen.

        BatchNormalization layers stay frozen, which in Keras 3 also keeps
        them in inference mode (moving statistics unchanged), unless
        `train_batchnorm=True`.
        """
        if self.variables is not None:
            for layer in self.layers:
                layer.set_variables_trainable(self.variables, trainable)
            return
        for layer in self.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = bool(trainable and train_batchnorm)
                continue
            set_trainable(layer, trainable)
            if trainable and not train_batchnorm:
                # A stage layer may be a block holding its own BatchNorms.
                for inner in layer._flatten_layers(include_self=False):
                    if isinstance(inner, keras.layers.BatchNormalization):
                        inner.trainable = False

    @property
    def trainable_weights(self):
        if self.variables is not None:
            live = all(layer.trainable for layer in self.layers)
            return [v for v in self.variables if live and v.trainable]
        weights = []
        for layer in self.layers:
            weights.extend(layer.trainable_weights)
        return weights

    @property
    def weights(self):
        if self.variables is not None:
            return list(self.variables)
        weights = []
        for layer in self.layers:
            weights.extend(layer.weights)
        return weights


def get_stages(model, num_groups=4, prefixes=None, exclude=()):
    """Splits a backbone (or a model containing one) into stages.

    Text is one more kind of backbone: a KerasHub text classifier or BERT-
    family backbone gets `keras_tl.text.get_text_stages`' stages
    (embeddings, one per transformer layer, pooler).

    Args:
        model: a `keras.Model`. If it contains a zoo network (see
            `keras_tl.build_backbone`), that network's named stages are used;
            if it contains a KerasHub vision transformer, the stages are
            `"patch_embedding"`, `"block_0"` ... `"block_{n-1}"` (one per
            transformer block) and `"final_norm"` (with SigLIP's
            attention-pooling head).
        num_groups: for other models, how many depth groups to make from the
            layers that hold weights (a normalization layer stays with the
            layer before it; fewer groups when the model has fewer blocks).
        prefixes: optional list of layer-name prefixes (or regular
            expressions), one per stage from input to output; overrides the
            two rules above.
        exclude: layers to leave out of every stage (e.g. the new head).

    Returns:
        A list of `Stage`, ordered from the input to the output: the last
        stage is the one next to the head, which fine-tuning unfreezes first.

    Raises:
        ValueError: when a prefix matches no layer, or the model has no
            weighted layer.

    Example:

    >>> import keras_tl
    >>> backbone = keras_tl.build_backbone("resnet50", weights=None,
    ...                                    input_shape=(64, 64, 3))
    >>> " ".join(s.name for s in keras_tl.get_stages(backbone))
    'conv1 conv2 conv3 conv4 conv5'
    """
    if not prefixes and _is_text_model(model):
        from keras_tl.text import get_text_stages

        return get_text_stages(model)
    excluded = {id(layer) for layer in exclude}
    if prefixes:
        layers = [l for l in leaf_layers(model) if id(l) not in excluded]
        stages = []
        for prefix in prefixes:
            pattern = re.compile(prefix)
            members = [l for l in layers if pattern.match(l.name)]
            if not members:
                raise ValueError(
                    f"Stage prefix {prefix!r} matches no layer of model "
                    f"{model.name!r}. Layer names start with: "
                    f"{sorted({l.name.split('_')[0] for l in layers})[:20]}."
                )
            stages.append(Stage(prefix, members))
        return stages

    spec, network = find_zoo_network(model)
    if spec is not None:
        return _zoo_stages(spec, network)
    family, network = find_hub_network(model)
    if family is not None and family.kind == "transformer":
        return _transformer_stages(network)

    graphs = [l for l in leaf_layers(model)
              if isinstance(l, SavedModelBackbone) and id(l) not in excluded]
    if graphs:
        return _saved_model_stages(graphs[0], num_groups)

    # Normalization layers join the layer before them, so a conv and its
    # BatchNorm always land in the same stage.
    units = []
    for layer in leaf_layers(model):
        if not layer.weights or id(layer) in excluded:
            continue
        if units and isinstance(layer, _NORMALIZATION_LAYERS):
            units[-1].append(layer)
        else:
            units.append([layer])
    if not units:
        raise ValueError(f"Model {model.name!r} has no layer with weights to group.")
    # A model with fewer weighted blocks than num_groups gets one per block.
    num_groups = min(num_groups, len(units))
    bounds = [round(i * len(units) / num_groups) for i in range(num_groups + 1)]
    return [
        Stage(f"group{i + 1}", [l for unit in units[bounds[i] : bounds[i + 1]] for l in unit])
        for i in range(num_groups)
    ]


def _saved_model_stages(layer, num_groups):
    # A SavedModel is one Keras layer: its depth groups are contiguous runs
    # of its variables, in the order the graph lists them.
    units = layer.variable_groups()
    if not units:
        raise ValueError(f"The SavedModel {layer.source!r} has no trainable variables to "
                         "unfreeze.")
    num_groups = min(num_groups, len(units))
    bounds = [round(i * len(units) / num_groups) for i in range(num_groups + 1)]
    return [
        Stage(f"group{i + 1}", [layer],
              [v for unit in units[bounds[i]: bounds[i + 1]] for v in unit])
        for i in range(num_groups)
    ]


def _zoo_stages(spec, network):
    layers = list(network.layers)
    names = [l.name for l in layers]
    stages, start = [], 0
    for stage_name, end_pattern in spec.stages:
        if end_pattern is None:
            end = len(layers) - 1
        else:
            pattern = re.compile(end_pattern)
            matches = [i for i in range(start, len(layers)) if pattern.fullmatch(names[i])]
            if not matches:
                raise ValueError(
                    f"Stage {stage_name!r} of {spec.name} found no layer matching "
                    f"{end_pattern!r}; the Keras Applications layer names changed."
                )
            end = matches[-1]
        stages.append(Stage(stage_name, layers[start : end + 1]))
        start = end + 1
    return stages


def is_transformer(model):
    """Whether `model` holds a KerasHub vision transformer (staged by blocks).

    Fine-tuning gives such backbones layer-wise rate decay (~0.7 per block,
    as BEiT and DINOv2 fine-tuning) instead of ULMFiT's factor between
    convolutional stages.

    Args:
        model: a `keras.Model`.

    Example:

    ```python
    is_transformer(keras_tl.build_backbone("models/vit_tiny"))  # -> True
    ```
    """
    family, _ = find_hub_network(model)
    return family is not None and family.kind == "transformer"


def _transformer_stages(network):
    # Blocks sit either at the top of the backbone (SigLIP, CLIP) or inside
    # one encoder layer (ViT, DeiT, DINOv2/v3): open containers of blocks.
    units = []
    for layer in network.layers:
        inner = list(layer._flatten_layers(include_self=False, recursive=False))
        if any(_BLOCK_NAME.fullmatch(child.name) for child in inner):
            units.extend(inner)
        else:
            units.append(layer)
    units = [layer for layer in units if layer.weights]
    blocks = [i for i, layer in enumerate(units) if _BLOCK_NAME.fullmatch(layer.name)]
    if not blocks:
        raise ValueError(
            f"{type(network).__name__} {network.name!r} has no transformer blocks "
            "(layers named like 'transformer_block_<i>', 'layers_<i>' or "
            "'encoder_block_<i>'); pass `prefixes=` to get_stages."
        )
    first, last = blocks[0], blocks[-1]
    stages = [Stage("patch_embedding", units[:first])] if first else []
    for k, i in enumerate(blocks):
        end = blocks[k + 1] if k + 1 < len(blocks) else last + 1
        stages.append(Stage(f"block_{k}", units[i:end]))
    if units[last + 1 :]:
        stages.append(Stage("final_norm", units[last + 1 :]))
    return stages


def freeze(model):
    """Freezes every layer of `model` (BatchNorm included).

    Unlike `model.trainable = False`, this also reaches the sublayers when
    the model's own flag is already `False` (on TensorFlow that assignment
    is skipped), e.g. a KerasHub backbone reloaded from a `.keras` file,
    whose inner layers Keras leaves trainable.

    Args:
        model: a `keras.Model` or layer.

    Example:

    ```python
    freeze(backbone)
    backbone.trainable_weights  # -> []
    ```
    """
    return set_trainable(model, False)


UNFREEZE_RULES = ("every", "at_epochs", "patience", "phases")


def _is_text_model(model):
    """A KerasHub text task (it tokenizes in a preprocessor) or a backbone
    with a token embedding and `transformer_layer_<i>` layers."""
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None and getattr(preprocessor, "tokenizer", None) is not None:
        return True
    backbone = getattr(model, "backbone", model)
    return (hasattr(backbone, "token_embedding")
            and any(layer.name.startswith("transformer_layer_")
                    for layer in getattr(backbone, "layers", [])))


def unfreeze_rule(
    num_stages,
    epochs,
    initially_trainable=1,
    every=None,
    at=None,
    patience=None,
    unfreeze=None,
):
    """When the frozen stages unfreeze, as `ProgressiveUnfreezing` keywords.

    The one unfreezing specification of `fine_tune`, `text_classifier`,
    `ProgressiveUnfreezing` and `fit_stages`: `unfreeze` is `None` or a
    dict with one of the keys

    - `"every"`: one more stage every this many epochs;
    - `"at_epochs"`: epochs (0-based) at which the next stage unfreezes (an
      epoch repeated unfreezes several);
    - `"patience"`: one more stage when `val_loss` has stalled this many
      epochs;
    - `"phases"`: the epochs split into this many equal phases, with an
      equal share of the frozen stages unfreezing at the start of each.

    `None` is ULMFiT's rule: one more stage per epoch, spread over the first
    half of the epochs in runs longer than twice the stages still frozen.
    (`every`, `at` and `patience` are the older keywords of the same rules.)

    Args:
        num_stages: stages of the backbone.
        epochs: epochs of the run.
        initially_trainable: top stages trainable from the start.
        every: as `unfreeze={"every": every}`.
        at: as `unfreeze={"at_epochs": at}`.
        patience: as `unfreeze={"patience": patience}`.
        unfreeze: the specification above.

    Returns:
        A dict with one of the keys `every`, `at_epochs`, `patience`.

    Example:

    >>> unfreeze_rule(num_stages=4, epochs=12)
    {'every': 2}
    >>> unfreeze_rule(num_stages=4, epochs=6, unfreeze={"phases": 3})
    {'at_epochs': [2, 2, 4]}
    """
    if isinstance(initially_trainable, bool) or not 0 <= initially_trainable <= num_stages:
        raise ValueError(
            f"initially_trainable={initially_trainable} but the backbone has "
            f"{num_stages} stages."
        )
    given = {k: v for k, v in (("every", every), ("at_epochs", at),
                                ("patience", patience)) if v is not None}
    spec = check_unfreeze(unfreeze)
    if spec is not None:
        given.update(spec)
    if len(given) > 1:
        raise ValueError(
            f"Pass one unfreezing rule (one of {UNFREEZE_RULES}); got {sorted(given)}.")
    remaining = num_stages - initially_trainable
    if "phases" in given:
        phases = max(1, min(given["phases"], remaining + 1))
        # Stages frozen at the start unfreeze in equal shares at the start
        # of phases 2, 3, ...: phase p starts at epoch round(p * epochs / phases).
        starts = [round(p * epochs / phases) for p in range(1, phases)]
        counts = [round(p * remaining / (phases - 1)) for p in range(phases)] \
            if phases > 1 else [0]
        return {"at_epochs": [start for p, start in enumerate(starts)
                              for _ in range(counts[p + 1] - counts[p])]}
    if given:
        return {k: list(v) if k == "at_epochs" else v for k, v in given.items()}
    if remaining <= 0:
        return {"at_epochs": []}
    return {"every": max(1, math.floor(epochs / 2 / remaining))}


def check_unfreeze(unfreeze):
    """Checks an unfreezing specification (see `unfreeze_rule`).

    Args:
        unfreeze: `None` or a dict with one key of `UNFREEZE_RULES`.

    Returns:
        The specification, with `at_epochs` as a sorted list.

    Example:

    >>> check_unfreeze({"every": 2})
    {'every': 2}
    """
    if unfreeze is None:
        return None
    if not isinstance(unfreeze, dict) or len(unfreeze) != 1 or not set(unfreeze) <= set(
            UNFREEZE_RULES):
        raise ValueError(
            f"unfreeze must be None (ULMFiT's rule) or a dict with one key of "
            f"{UNFREEZE_RULES}, e.g. {{'every': 2}}; got {unfreeze!r}."
        )
    (key, value), = unfreeze.items()
    if key == "at_epochs":
        try:
            epochs = sorted(int(e) for e in value)
        except (TypeError, ValueError):
            raise ValueError(f"unfreeze['at_epochs'] must be a list of epochs; got {value!r}.")
        if epochs and epochs[0] < 0:
            raise ValueError(f"unfreeze['at_epochs'] must be >= 0; got {epochs}.")
        return {key: epochs}
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"unfreeze[{key!r}] must be an integer >= 1; got {value!r}.")
    return {key: value}
