"""keras-tl: transfer learning for Keras 3.

Feature extraction, fine-tuning and knowledge distillation of pretrained
networks, and export of the result to LiteRT for phones.

The names below are grouped by task: the recipes, the data, the backbones,
training, distillation, domain adaptation, choosing a backbone, export, and
evaluation. Each room (submodule) holds one concept; `keras_tl.examples`
holds the bundled sample data and pretrained fixtures.
"""

import importlib
import sys
import types
import warnings

# -- rooms -------------------------------------------------------------------
from keras_tl import augment
from keras_tl import backbones
from keras_tl import callbacks
from keras_tl import checkpoints
from keras_tl import compression
from keras_tl import data
from keras_tl import distillation
from keras_tl import domain_adaptation
from keras_tl import engine
from keras_tl import evaluation
from keras_tl import examples
from keras_tl import export
from keras_tl import features
from keras_tl import finite
from keras_tl import heads
from keras_tl import hub_backbones
from keras_tl import lora
from keras_tl import lr_finder
from keras_tl import optimizers
from keras_tl import plots
from keras_tl import pooling
from keras_tl import recipes
from keras_tl import schedules
from keras_tl import selection
from keras_tl import stages
from keras_tl import text

# -- recipes -----------------------------------------------------------------
from keras_tl.recipes import adapt_domain
from keras_tl.recipes import distill
from keras_tl.recipes import feature_extraction
from keras_tl.recipes import fine_tune
from keras_tl.recipes import text_classifier

# -- data --------------------------------------------------------------------
from keras_tl.augment import Augmentation
from keras_tl.data import ImageData
from keras_tl.data import as_dataset
from keras_tl.examples.text_datasets import load_sentiment_snippets
from keras_tl.text import TextData

# -- backbones and heads -----------------------------------------------------
from keras_tl.backbones import BackboneSpec
from keras_tl.backbones import build_backbone
from keras_tl.backbones import build_small_cnn
from keras_tl.backbones import get_spec
from keras_tl.backbones import list_backbones
from keras_tl.features import extract
from keras_tl.heads import ClassNames
from keras_tl.heads import attach_head
from keras_tl.heads import build_head
from keras_tl.heads import fit_linear_head
from keras_tl.heads import get_class_names
from keras_tl.pooling import TokenPooling
from keras_tl.preprocessing import ImagePreprocessing
from keras_tl.stages import Stage
from keras_tl.stages import get_stages
from keras_tl.text import PooledTextClassifier
from keras_tl.text import build_text_classifier
from keras_tl.text import load_text_preset

# -- training ----------------------------------------------------------------
from keras_tl.callbacks import LRFinder
from keras_tl.callbacks import ProgressiveUnfreezing
from keras_tl.callbacks import SyncBatchNormStatistics
from keras_tl.callbacks import sync_batchnorm_statistics
from keras_tl.checkpoints import CheckpointMismatchError
from keras_tl.checkpoints import TrainingCheckpoint
from keras_tl.checkpoints import data_fingerprint
from keras_tl.engine import SCHEDULES
from keras_tl.engine import fit_stages
from keras_tl.engine import make_schedule
from keras_tl.finite import NonFiniteLossError
from keras_tl.finite import StopOnNonFiniteLoss
from keras_tl.lora import enable_lora
from keras_tl.lora import merge_lora
from keras_tl.lr_finder import LRFinderResult
from keras_tl.lr_finder import find_learning_rate
from keras_tl.optimizers import discriminative_optimizer
from keras_tl.optimizers import learning_rates
from keras_tl.optimizers import rebuild_optimizer
from keras_tl.schedules import OneCycle
from keras_tl.schedules import SlantedTriangular
from keras_tl.schedules import StageLearningRate
from keras_tl.schedules import WarmupDecay

# -- distillation ------------------------------------------------------------
from keras_tl.distillation import Distiller
from keras_tl.distillation import HintDistillation
from keras_tl.distillation import SoftTargetDistillation
from keras_tl.distillation import shrink_bert

# -- domain adaptation ---------------------------------------------------------
from keras_tl.domain_adaptation import DomainAdaptation
from keras_tl.domain_adaptation import GradientReversal
from keras_tl.domain_adaptation import adabn
from keras_tl.domain_adaptation import coral_loss

# -- choosing a backbone -----------------------------------------------------
from keras_tl.selection import leep
from keras_tl.selection import log_me
from keras_tl.selection import nce
from keras_tl.selection import normalize_features
from keras_tl.selection import rank_backbones
from keras_tl.selection import recommend_backbone

# -- export ------------------------------------------------------------------
from keras_tl.export import ExportReport
from keras_tl.export import LiteRTModel
from keras_tl.export import TFLiteTextClassifier
from keras_tl.export import UnsupportedOpsError
from keras_tl.export import text_to_tflite
from keras_tl.export import to_tflite

# -- evaluation --------------------------------------------------------------
from keras_tl.evaluation import EvaluationReport
from keras_tl.evaluation import evaluate
from keras_tl.evaluation import predict
from keras_tl.version import __version__

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
    "lr_finder",
    "optimizers",
    "plots",
    "pooling",
    "recipes",
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
    "Stage",
    "TokenPooling",
    "attach_head",
    "build_backbone",
    "build_head",
    "build_small_cnn",
    "build_text_classifier",
    "extract",
    "fit_linear_head",
    "get_class_names",
    "get_spec",
    "get_stages",
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
    "SyncBatchNormStatistics",
    "TrainingCheckpoint",
    "WarmupDecay",
    "data_fingerprint",
    "discriminative_optimizer",
    "enable_lora",
    "find_learning_rate",
    "fit_stages",
    "learning_rates",
    "make_schedule",
    "merge_lora",
    "rebuild_optimizer",
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
    "evaluate",
    "predict",
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
