"""keras-tl: transfer learning for Keras 3.

Feature extraction, fine-tuning and knowledge distillation of pretrained
networks, and export of the result to LiteRT for phones.

The names below are grouped by task: the recipes, the data, the backbones,
training, distillation, domain adaptation, choosing a backbone, export, and
evaluation. Each room (submodule) holds one concept; `keras_tl.examples`
holds the bundled sample data and pretrained fixtures.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

# Where each public name lives. `import keras_tl` loads none of them (nor
# Keras, nor TensorFlow): a name's module is imported when the name is first
# read, so the command line and a notebook's first cell start at once.
_LAZY = {
    # rooms
    "augment": "keras_tl.augment",
    "backbones": "keras_tl.backbones",
    "callbacks": "keras_tl.callbacks",
    "checkpoints": "keras_tl.checkpoints",
    "compression": "keras_tl.compression",
    "data": "keras_tl.data",
    "distillation": "keras_tl.distillation",
    "domain_adaptation": "keras_tl.domain_adaptation",
    "engine": "keras_tl.engine",
    "evaluation": "keras_tl.evaluation",
    "examples": "keras_tl.examples",
    "export": "keras_tl.export",
    "features": "keras_tl.features",
    "finite": "keras_tl.finite",
    "heads": "keras_tl.heads",
    "hub_backbones": "keras_tl.hub_backbones",
    "lora": "keras_tl.lora",
    "losses": "keras_tl.losses",
    "lr_finder": "keras_tl.lr_finder",
    "multi_label": "keras_tl.multi_label",
    "optimizers": "keras_tl.optimizers",
    "plots": "keras_tl.plots",
    "pooling": "keras_tl.pooling",
    "recipes": "keras_tl.recipes",
    "saved_model_backbone": "keras_tl.saved_model_backbone",
    "saving": "keras_tl.saving",
    "schedules": "keras_tl.schedules",
    "selection": "keras_tl.selection",
    "stages": "keras_tl.stages",
    "text": "keras_tl.text",
    # recipes
    "adapt_domain": "keras_tl.recipes",
    "distill": "keras_tl.recipes",
    "feature_extraction": "keras_tl.recipes",
    "fine_tune": "keras_tl.recipes",
    "text_classifier": "keras_tl.recipes",
    # data
    "Augmentation": "keras_tl.augment",
    "ImageData": "keras_tl.data",
    "as_dataset": "keras_tl.data",
    "load_sentiment_snippets": "keras_tl.examples.text_datasets",
    "TextData": "keras_tl.text",
    # backbones and heads
    "BackboneSpec": "keras_tl.backbones",
    "build_backbone": "keras_tl.backbones",
    "build_small_cnn": "keras_tl.backbones",
    "get_spec": "keras_tl.backbones",
    "list_backbones": "keras_tl.backbones",
    "extract": "keras_tl.features",
    "ClassNames": "keras_tl.heads",
    "attach_head": "keras_tl.heads",
    "build_head": "keras_tl.heads",
    "fit_linear_head": "keras_tl.heads",
    "fit_multi_label_head": "keras_tl.heads",
    "fit_thresholds": "keras_tl.heads",
    "get_class_names": "keras_tl.heads",
    "get_thresholds": "keras_tl.heads",
    "TokenPooling": "keras_tl.pooling",
    "ImagePreprocessing": "keras_tl.preprocessing",
    "SavedModelBackbone": "keras_tl.saved_model_backbone",
    "Stage": "keras_tl.stages",
    "get_stages": "keras_tl.stages",
    "PooledTextClassifier": "keras_tl.text",
    "build_text_classifier": "keras_tl.text",
    "load_text_preset": "keras_tl.text",
    # training
    "LRFinder": "keras_tl.callbacks",
    "ProgressiveUnfreezing": "keras_tl.callbacks",
    "SyncBatchNormStatistics": "keras_tl.callbacks",
    "sync_batchnorm_statistics": "keras_tl.callbacks",
    "CheckpointMismatchError": "keras_tl.checkpoints",
    "TrainingCheckpoint": "keras_tl.checkpoints",
    "data_fingerprint": "keras_tl.checkpoints",
    "SCHEDULES": "keras_tl.engine",
    "fit_stages": "keras_tl.engine",
    "make_schedule": "keras_tl.engine",
    "NonFiniteLossError": "keras_tl.finite",
    "StopOnNonFiniteLoss": "keras_tl.finite",
    "enable_lora": "keras_tl.lora",
    "merge_lora": "keras_tl.lora",
    "load_model": "keras_tl.saving",
    "MultiLabelCrossentropy": "keras_tl.losses",
    "SparseLabelSmoothingCrossentropy": "keras_tl.losses",
    "refreeze": "keras_tl.saving",
    "LRFinderResult": "keras_tl.lr_finder",
    "find_learning_rate": "keras_tl.lr_finder",
    "discriminative_optimizer": "keras_tl.optimizers",
    "learning_rates": "keras_tl.optimizers",
    "rebuild_optimizer": "keras_tl.optimizers",
    "OneCycle": "keras_tl.schedules",
    "SlantedTriangular": "keras_tl.schedules",
    "StageLearningRate": "keras_tl.schedules",
    "WarmupDecay": "keras_tl.schedules",
    # distillation
    "Distiller": "keras_tl.distillation",
    "HintDistillation": "keras_tl.distillation",
    "SoftTargetDistillation": "keras_tl.distillation",
    "shrink_bert": "keras_tl.distillation",
    # domain adaptation
    "DomainAdaptation": "keras_tl.domain_adaptation",
    "GradientReversal": "keras_tl.domain_adaptation",
    "adabn": "keras_tl.domain_adaptation",
    "coral_loss": "keras_tl.domain_adaptation",
    # choosing a backbone
    "leep": "keras_tl.selection",
    "log_me": "keras_tl.selection",
    "nce": "keras_tl.selection",
    "normalize_features": "keras_tl.selection",
    "rank_backbones": "keras_tl.selection",
    "recommend_backbone": "keras_tl.selection",
    # export
    "ExportReport": "keras_tl.export",
    "LiteRTModel": "keras_tl.export",
    "TFLiteTextClassifier": "keras_tl.export",
    "UnsupportedOpsError": "keras_tl.export",
    "text_to_tflite": "keras_tl.export",
    "to_tflite": "keras_tl.export",
    # evaluation
    "EvaluationReport": "keras_tl.evaluation",
    "MultiLabelReport": "keras_tl.evaluation",
    "evaluate": "keras_tl.evaluation",
    "predict": "keras_tl.evaluation",
    "plot_history": "keras_tl.plots",
    "show_batch": "keras_tl.plots",
}

from keras_tl.version import __version__  # noqa: E402

__all__ = [
    "__version__",
    # rooms
    "augment",
    "backbones",
    "callbacks",
    "checkpoints",
    "compression",
    "data",
    "distillation",
    "domain_adaptation",
    "engine",
    "evaluation",
    "examples",
    "export",
    "features",
    "finite",
    "heads",
    "hub_backbones",
    "lora",
    "losses",
    "lr_finder",
    "multi_label",
    "optimizers",
    "plots",
    "pooling",
    "recipes",
    "saved_model_backbone",
    "saving",
    "schedules",
    "selection",
    "stages",
    "text",
    # recipes
    "adapt_domain",
    "distill",
    "feature_extraction",
    "fine_tune",
    "text_classifier",
    # data
    "Augmentation",
    "ImageData",
    "TextData",
    "as_dataset",
    "load_sentiment_snippets",
    # backbones and heads
    "BackboneSpec",
    "ClassNames",
    "ImagePreprocessing",
    "PooledTextClassifier",
    "SavedModelBackbone",
    "Stage",
    "TokenPooling",
    "attach_head",
    "build_backbone",
    "build_head",
    "build_small_cnn",
    "build_text_classifier",
    "extract",
    "fit_linear_head",
    "fit_multi_label_head",
    "fit_thresholds",
    "get_class_names",
    "get_spec",
    "get_stages",
    "get_thresholds",
    "list_backbones",
    "load_text_preset",
    # training
    "CheckpointMismatchError",
    "LRFinder",
    "LRFinderResult",
    "NonFiniteLossError",
    "OneCycle",
    "ProgressiveUnfreezing",
    "SCHEDULES",
    "SlantedTriangular",
    "StageLearningRate",
    "StopOnNonFiniteLoss",
    "MultiLabelCrossentropy",
    "SparseLabelSmoothingCrossentropy",
    "SyncBatchNormStatistics",
    "TrainingCheckpoint",
    "WarmupDecay",
    "data_fingerprint",
    "discriminative_optimizer",
    "enable_lora",
    "find_learning_rate",
    "fit_stages",
    "learning_rates",
    "load_model",
    "make_schedule",
    "merge_lora",
    "rebuild_optimizer",
    "refreeze",
    "sync_batchnorm_statistics",
    # distillation
    "Distiller",
    "HintDistillation",
    "SoftTargetDistillation",
    "shrink_bert",
    # domain adaptation
    "DomainAdaptation",
    "GradientReversal",
    "adabn",
    "coral_loss",
    # choosing a backbone
    "leep",
    "log_me",
    "nce",
    "normalize_features",
    "rank_backbones",
    "recommend_backbone",
    # export
    "ExportReport",
    "LiteRTModel",
    "TFLiteTextClassifier",
    "UnsupportedOpsError",
    "text_to_tflite",
    "to_tflite",
    # evaluation
    "EvaluationReport",
    "MultiLabelReport",
    "evaluate",
    "plot_history",
    "predict",
    "show_batch",
]

# Rooms renamed in 0.4: the old module paths still import (see
# `_MovedModule`), and the first name read through them warns.
_MOVED_ROOMS = {
    "adapt": "domain_adaptation",
    "optimize": "compression",
    "select": "selection",
    "datasets": "examples.datasets",
    "datasets_text": "examples.text_datasets",
    "pretrained": "examples.pretrained",
}

# The text twins of one idea: `keras_tl.as_dataset`, `extract`, `get_stages`,
# `to_tflite` and `list_backbones("text")` take text too.
_TEXT_TWINS = {
    "as_text_dataset": ("keras_tl.text", "as_dataset"),
    "extract_text_features": ("keras_tl.text", "extract"),
    "get_text_stages": ("keras_tl.text", "get_stages"),
    "list_text_presets": ("keras_tl.text", 'list_backbones("text")'),
}


def __getattr__(name):
    if name in _LAZY:
        from keras_tl._utils.logs import start_tensorflow_quietly

        start_tensorflow_quietly()
        module = importlib.import_module(_LAZY[name])
        value = module if _LAZY[name] == f"keras_tl.{name}" else getattr(module, name)
        globals()[name] = value
        _register_serializables()
        return value
    if name in _MOVED_ROOMS:
        return sys.modules[f"keras_tl.{name}"]
    if name in _TEXT_TWINS:
        module, instead = _TEXT_TWINS[name]
        warnings.warn(
            f"keras_tl.{name} is deprecated: keras_tl.{instead} takes text too "
            f"({module}.{name} stays for the text room). It will be removed in keras-tl 0.5.",
            DeprecationWarning, stacklevel=2,
        )
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _MovedModule(types.ModuleType):
    """A module path that moved: attribute access reaches the new module,
    with one `DeprecationWarning`. Registered in `sys.modules` only, so
    that the package attribute of the same name (a recipe function, such
    as `keras_tl.distill`) is not replaced by a module."""

    def __init__(self, old, new):
        super().__init__(old)
        self._new = new
        self._warned = False

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__") and name != "__all__":
            raise AttributeError(name)
        if not self._warned:
            self._warned = True
            warnings.warn(f"{self.__name__} moved to {self._new}", DeprecationWarning,
                          stacklevel=2)
        return getattr(importlib.import_module(self._new), name)


for _old, _new in {
    **{f"keras_tl.{old}": f"keras_tl.{new}" for old, new in _MOVED_ROOMS.items()},
    "keras_tl.distill": "keras_tl.distillation",
    "keras_tl.recipes.adapt": "keras_tl.recipes.domain_adaptation",
    "keras_tl.recipes.distill": "keras_tl.recipes.distillation",
    "keras_tl.recipes.feature_extraction": "keras_tl.recipes.frozen_backbone",
    "keras_tl.recipes.fine_tune": "keras_tl.recipes.fine_tuning",
    "keras_tl.recipes.text_classifier": "keras_tl.recipes.text_classification",
}.items():
    sys.modules.setdefault(_old, _MovedModule(_old, _new))
del _old, _new


# Modules whose layers, losses and schedules a saved model names
# ("keras_tl>ImagePreprocessing", ...): Keras finds them only once they are
# registered, so they are imported as soon as Keras itself is, whichever of
# `import keras` and `import keras_tl` comes first.
_SERIALIZABLES = (
    "keras_tl.augment",
    "keras_tl.distillation",
    "keras_tl.domain_adaptation",
    "keras_tl.heads",
    "keras_tl.losses",
    "keras_tl.pooling",
    "keras_tl.preprocessing",
    "keras_tl.saved_model_backbone",
    "keras_tl.schedules",
    "keras_tl.text.classifier",
)


_registered = False


def _importing_keras_tl():
    """Whether a keras-tl module is being imported now (registering then
    would import its neighbours in the middle of its own imports)."""
    return any(
        name.startswith("keras_tl.") and getattr(getattr(module, "__spec__", None),
                                                 "_initializing", False)
        for name, module in list(sys.modules.items())
    )


def _register_serializables():
    """Imports `_SERIALIZABLES` once, when no keras-tl import is under way
    (else the next public name read does it)."""
    global _registered
    if not _registered and not _importing_keras_tl():
        _registered = True
        for module in _SERIALIZABLES:
            importlib.import_module(module)


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Registers keras-tl's serializable objects right after `keras` is
    imported: a saved model then loads after a plain `import keras_tl`."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras" or self._busy:
            return None
        # The spec of a probe (`importlib.util.find_spec("keras")`, as
        # TensorFlow does) may never be loaded: every spec gets the hook,
        # and the finder leaves once one of them has run.
        self._busy = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy = False
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _register_serializables()

        spec.loader.exec_module = exec_module
        return spec

    _busy = False


if "keras" in sys.modules:
    _register_serializables()
else:
    sys.meta_path.insert(0, _AfterKerasImport())
