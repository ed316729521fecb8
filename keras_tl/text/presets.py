"""KerasHub BERT-family presets: names, local folders and remote handles.

Remote presets are probed before KerasHub fetches them, so a machine
without network fails in seconds with advice on passing a local folder.
"""

import os

from keras_tl._utils.presets import resolve_preset

__all__ = [
    "DEFAULT_TEXT_PRESET",
    "list_text_presets",
    "load_text_preset",
    "resolve_text_preset",
]

DEFAULT_TEXT_PRESET = "bert_base_multi"

# KerasHub task classes whose backbones form the BERT family (encoder-only
# transformers with a text-classification task).
_BERT_FAMILY_TASKS = (
    "BertTextClassifier",
    "DistilBertTextClassifier",
    "RobertaTextClassifier",
    "XLMRobertaTextClassifier",
    "AlbertTextClassifier",
    "DebertaV3TextClassifier",
)


def list_text_presets():
    """The KerasHub built-in preset names of the BERT family.

    Read from the installed KerasHub (BERT, DistilBERT, RoBERTa, XLM-RoBERTa,
    ALBERT, DeBERTa-v3 and the sentence encoders built on them). Any of them,
    a local preset folder or an `hf://` handle can be passed as `preset`.

    Returns:
        A sorted list of names.

    Example:

    >>> "bert_base_multi" in list_text_presets()
    True
    """
    import keras_hub

    names = set()
    for task_name in _BERT_FAMILY_TASKS:
        task = getattr(keras_hub.models, task_name, None)
        if task is not None:
            names.update(task.backbone_cls.presets.keys())
    return sorted(names)


def _offline_message(preset, reason):
    return (
        f"Cannot fetch text preset {preset!r}: {reason}. Without network access, "
        "pass a local preset folder instead: on a machine online, save one with "
        f"`keras_hub.models.TextClassifier.from_preset({preset!r}, "
        "num_classes=2).save_to_preset('my_preset')`, or download a Hugging Face "
        "BERT model folder (config.json, vocab.txt, model.safetensors), copy it "
        "here and pass preset='path/to/folder'."
    )


def resolve_text_preset(preset):
    """Checks a text preset and returns what KerasHub should load.

    Local folders must exist and hold a `config.json`. Built-in names must
    belong to the BERT family. Remote presets (built-in names, `hf://`,
    `kaggle://`, `modelscope://`) are probed first, so a machine without
    network fails in seconds with a message on how to pass a local folder
    (an `hf://` model already in the Hugging Face cache is used from there).

    Args:
        preset: a built-in name (`list_text_presets()`), a local folder or a
            `hf://` / `kaggle://` / `modelscope://` handle.

    Returns:
        A string `keras_hub` `from_preset` accepts.

    Raises:
        ValueError: an unknown name (the message lists the BERT-family names).
        FileNotFoundError: a folder that does not exist or has no config.json.
        ConnectionError: a remote preset with no network.

    Example:

    ```python
    resolve_text_preset("/models/bertimbau")  # -> '/models/bertimbau'
    ```
    """
    return resolve_preset(
        preset, kind="text", known_names=list_text_presets,
        unknown_hint=(
            f"BERT-family KerasHub presets: {', '.join(list_text_presets())}. Or pass a "
            "local preset folder, or a Hugging Face handle such as "
            "'hf://neuralmind/bert-base-portuguese-cased'."),
        folder_hint=(
            "A preset folder is one saved by KerasHub `save_to_preset`, or a Hugging Face "
            "model folder with config.json, vocab.txt and model.safetensors."),
        offline_message=_offline_message,
    )


def load_text_preset(preset=DEFAULT_TEXT_PRESET, sequence_length=128):
    """Loads a BERT-family backbone and its text preprocessor.

    Args:
        preset: a built-in name, a local preset folder (KerasHub or Hugging
            Face layout) or an `hf://` handle, e.g.
            `"hf://neuralmind/bert-base-portuguese-cased"` (BERTimbau).
        sequence_length: tokens per text after truncation and padding.

    Returns:
        `(backbone, preprocessor)`: a `keras_hub.models.Backbone` and a
        `keras_hub.models.TextClassifierPreprocessor`.

    Raises:
        ValueError, FileNotFoundError, ConnectionError: see
        `resolve_text_preset`.

    Example:

    ```python
    backbone, preprocessor = load_text_preset("bert_base_multi", 128)
    ```
    """
    import keras_hub

    source = resolve_text_preset(preset)
    try:
        backbone = keras_hub.models.Backbone.from_preset(source)
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
            source, sequence_length=sequence_length
        )
    except (ConnectionError, OSError) as error:
        if os.path.isdir(source):
            raise
        raise ConnectionError(_offline_message(preset, error)) from error
    if _sequence_output_of(backbone) is None:
        raise ValueError(
            f"Preset {preset!r} loads a {type(backbone).__name__}, not a BERT-family "
            "text encoder."
        )
    max_length = getattr(backbone, "max_sequence_length", None)
    if max_length is not None and sequence_length > max_length:
        raise ValueError(
            f"sequence_length={sequence_length} exceeds the {max_length} positions "
            f"of preset {preset!r}; pass sequence_length <= {max_length}."
        )
    return backbone, preprocessor


def _sequence_output_of(backbone):
    outputs = backbone.output
    if isinstance(outputs, dict):
        return outputs.get("sequence_output")
    return outputs if len(outputs.shape) == 3 else None
