"""`shrink_bert`: a shallower BERT-family student initialized from its teacher."""

import keras

__all__ = ["shrink_bert"]


def shrink_bert(teacher, num_layers=None, layer_indices=None):
    """A shallower copy of a BERT-family model, initialized from its layers.

    DistilBERT's initialization: the student keeps the teacher's
    embeddings, pooler and classifier and takes one transformer layer out
    of two (`layer_indices`, by default `0, 2, 4, ...`), so it starts close
    to the teacher and distillation only has to close the gap. Works for
    keras-hub backbones built from a `num_layers` config with layers
    named `transformer_layer_{i}` (BERT, RoBERTa, DistilBERT, ...), and
    for text classifiers around them.

    Args:
        teacher: a keras-hub backbone (e.g. `keras_hub.models.BertBackbone`)
            or a text classifier with a `.backbone` (e.g.
            `BertTextClassifier`).
        num_layers: number of student layers; defaults to half the
            teacher's (rounded up).
        layer_indices: which teacher layers initialize the student's, in
            order; defaults to every other layer.

    Returns:
        A model of the teacher's type (classifier or backbone) with fewer
        transformer layers and the same inputs and outputs, trainable
        whether or not the teacher is frozen.

    Example:

    ```python
    teacher = keras_hub.models.BertTextClassifier.from_preset(
        "bert_base_en_uncased", num_classes=2)
    student = shrink_bert(teacher)  # 6 layers, from layers 0, 2, ..., 10
    ```
    """
    is_classifier = hasattr(teacher, "backbone") and isinstance(
        teacher.backbone, keras.Model
    )
    backbone = teacher.backbone if is_classifier else teacher
    config = backbone.get_config()
    if "num_layers" not in config:
        raise ValueError(
            f"{type(backbone).__name__} has no `num_layers` in its config; "
            "shrink_bert works on keras-hub BERT-family backbones."
        )
    depth = int(config["num_layers"])
    if layer_indices is None:
        num_layers = num_layers or (depth + 1) // 2
        if not 1 <= num_layers <= depth:
            raise ValueError(
                f"num_layers must be in [1, {depth}] for a {depth}-layer teacher; "
                f"got {num_layers}."
            )
        step = depth / num_layers
        layer_indices = [int(i * step) for i in range(num_layers)]
    layer_indices = [int(i) for i in layer_indices]
    if num_layers is not None and len(layer_indices) != num_layers:
        raise ValueError(
            f"{len(layer_indices)} layer_indices given for num_layers={num_layers}."
        )
    bad = [i for i in layer_indices if not 0 <= i < depth]
    if bad or not layer_indices:
        raise ValueError(
            f"layer_indices must be teacher layers in [0, {depth - 1}]; got "
            f"{layer_indices}."
        )
    config["num_layers"] = len(layer_indices)
    config["name"] = f"{backbone.name}_{len(layer_indices)}_layers"
    # A student is made to be trained: a frozen teacher (a distiller freezes
    # its teacher) must not hand its `trainable=False` on through the config.
    config["trainable"] = True
    student_backbone = type(backbone).from_config(config)
    _copy_layers(backbone, student_backbone, layer_indices)
    if not is_classifier:
        return student_backbone
    classifier_config = teacher.get_config()
    classifier_config["backbone"] = student_backbone
    classifier_config["preprocessor"] = teacher.preprocessor
    classifier_config.pop("name", None)
    student = type(teacher)(**{
        k: v for k, v in classifier_config.items()
        if k not in ("trainable", "dtype")
    })
    for layer in student.layers:
        if layer is student_backbone or layer is getattr(student, "preprocessor", None):
            continue
        if layer.weights:
            layer.set_weights(teacher.get_layer(layer.name).get_weights())
    return student


def _copy_layers(source, target, layer_indices):
    mapping = {f"transformer_layer_{i}": f"transformer_layer_{j}"
               for i, j in enumerate(layer_indices)}
    for layer in target.layers:
        if not layer.weights:
            continue
        source_name = mapping.get(layer.name, layer.name)
        layer.set_weights(source.get_layer(source_name).get_weights())
