"""keras-tl: transfer learning for Keras 3.

Feature extraction, fine-tuning and knowledge distillation of pretrained
networks, and export of the result to LiteRT for phones.
"""

from keras_tl import adapt
from keras_tl import augment
from keras_tl import backbones
from keras_tl import callbacks
from keras_tl import data
from keras_tl import datasets
from keras_tl import distillation
from keras_tl import engine
from keras_tl import evaluation
from keras_tl import export
from keras_tl import features
from keras_tl import finite
from keras_tl import heads
from keras_tl import hub_backbones
from keras_tl import lora
from keras_tl import lr_finder
from keras_tl import optimize
from keras_tl import optimizers
from keras_tl import plots
from keras_tl import pooling
from keras_tl import pretrained
from keras_tl import recipes
from keras_tl import schedules
from keras_tl import select
from keras_tl import stages
from keras_tl import text
from keras_tl.adapt import DomainAdaptation
from keras_tl.adapt import GradientReversal
from keras_tl.adapt import adabn
from keras_tl.adapt import coral_loss
from keras_tl.augment import Augmentation
from keras_tl.backbones import BackboneSpec
from keras_tl.backbones import build_backbone
from keras_tl.backbones import build_small_cnn
from keras_tl.backbones import get_spec
from keras_tl.backbones import list_backbones
from keras_tl.callbacks import LRFinder
from keras_tl.callbacks import ProgressiveUnfreezing
from keras_tl.callbacks import SyncBatchNormStatistics
from keras_tl.callbacks import sync_batchnorm_statistics
from keras_tl.data import ImageData
from keras_tl.data import as_dataset
from keras_tl.datasets_text import load_sentiment_snippets
from keras_tl.engine import fit_stages
from keras_tl.evaluation import EvaluationReport
from keras_tl.evaluation import evaluate
from keras_tl.evaluation import predict
from keras_tl.engine import make_schedule
from keras_tl.distillation import Distiller
from keras_tl.distillation import shrink_bert
from keras_tl.export import ExportReport
from keras_tl.export import LiteRTModel
from keras_tl.export import TFLiteTextClassifier
from keras_tl.export import UnsupportedOpsError
from keras_tl.export import text_to_tflite
from keras_tl.export import to_tflite
from keras_tl.features import extract
from keras_tl.finite import NonFiniteLossError
from keras_tl.finite import StopOnNonFiniteLoss
from keras_tl.heads import ClassNames
from keras_tl.heads import attach_head
from keras_tl.heads import build_head
from keras_tl.heads import fit_linear_head
from keras_tl.heads import get_class_names
from keras_tl.lora import enable_lora
from keras_tl.lora import merge_lora
from keras_tl.lr_finder import LRFinderResult
from keras_tl.lr_finder import find_learning_rate
from keras_tl.optimizers import discriminative_optimizer
from keras_tl.optimizers import learning_rates
from keras_tl.optimizers import rebuild_optimizer
from keras_tl.pooling import TokenPooling
from keras_tl.preprocessing import ImagePreprocessing
from keras_tl.schedules import OneCycle
from keras_tl.schedules import SlantedTriangular
from keras_tl.schedules import StageLearningRate
from keras_tl.schedules import WarmupDecay
from keras_tl.select import leep
from keras_tl.select import log_me
from keras_tl.select import nce
from keras_tl.select import normalize_features
from keras_tl.select import rank_backbones
from keras_tl.select import recommend_backbone
from keras_tl.stages import Stage
from keras_tl.stages import get_stages
from keras_tl.text import PooledTextClassifier
from keras_tl.text import TextData
from keras_tl.text import as_text_dataset
from keras_tl.text import build_text_classifier
from keras_tl.text import extract_text_features
from keras_tl.text import get_text_stages
from keras_tl.text import list_text_presets
from keras_tl.text import load_text_preset
from keras_tl.version import __version__

__all__ = [
    "engine",
    "finite",
    "NonFiniteLossError",
    "StopOnNonFiniteLoss",
    "fit_stages",
    "make_schedule",
    "__version__",
    "adapt",
    "augment",
    "backbones",
    "callbacks",
    "data",
    "datasets",
    "distillation",
    "evaluation",
    "export",
    "features",
    "heads",
    "hub_backbones",
    "lora",
    "lr_finder",
    "optimize",
    "optimizers",
    "plots",
    "pooling",
    "pretrained",
    "recipes",
    "schedules",
    "select",
    "stages",
    "text",
    "Augmentation",
    "BackboneSpec",
    "ClassNames",
    "Distiller",
    "DomainAdaptation",
    "EvaluationReport",
    "ExportReport",
    "GradientReversal",
    "ImageData",
    "ImagePreprocessing",
    "LRFinder",
    "LRFinderResult",
    "LiteRTModel",
    "OneCycle",
    "PooledTextClassifier",
    "ProgressiveUnfreezing",
    "SlantedTriangular",
    "Stage",
    "StageLearningRate",
    "SyncBatchNormStatistics",
    "TFLiteTextClassifier",
    "TextData",
    "TokenPooling",
    "UnsupportedOpsError",
    "WarmupDecay",
    "adabn",
    "as_dataset",
    "as_text_dataset",
    "attach_head",
    "build_backbone",
    "build_head",
    "build_small_cnn",
    "build_text_classifier",
    "coral_loss",
    "discriminative_optimizer",
    "enable_lora",
    "evaluate",
    "extract",
    "extract_text_features",
    "find_learning_rate",
    "fit_linear_head",
    "get_class_names",
    "get_spec",
    "get_stages",
    "get_text_stages",
    "learning_rates",
    "leep",
    "list_backbones",
    "list_text_presets",
    "load_sentiment_snippets",
    "load_text_preset",
    "log_me",
    "merge_lora",
    "nce",
    "normalize_features",
    "predict",
    "rank_backbones",
    "rebuild_optimizer",
    "recommend_backbone",
    "shrink_bert",
    "sync_batchnorm_statistics",
    "text_to_tflite",
    "to_tflite",
]



def __getattr__(name):
    # `keras_tl.distill` is the deprecated alias of `keras_tl.distillation`;
    # imported on first use, so that `import keras_tl` does not warn.
    if name == "distill":
        import importlib

        return importlib.import_module("keras_tl.distill")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
