"""keras-tl: transfer learning for Keras 3.

Feature extraction, fine-tuning and knowledge distillation of pretrained
networks, and export of the result to LiteRT for phones.
"""

from keras_tl import backbones
from keras_tl import data
from keras_tl import datasets
from keras_tl import features
from keras_tl import heads
from keras_tl import stages
from keras_tl.backbones import BackboneSpec
from keras_tl.backbones import build_backbone
from keras_tl.backbones import build_small_cnn
from keras_tl.backbones import get_spec
from keras_tl.backbones import list_backbones
from keras_tl.data import ImageData
from keras_tl.data import as_dataset
from keras_tl.heads import ClassNames
from keras_tl.heads import get_class_names
from keras_tl.preprocessing import ImagePreprocessing
from keras_tl.stages import Stage
from keras_tl.stages import get_stages

__version__ = "0.1.0"
