"""Multi-label tasks end to end: labels in every form, the one-vs-rest
closed-form head, thresholds that travel with the model, evaluation,
prediction, fine-tuning, text, class weights and label smoothing."""

import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.examples.datasets import load_multi_label_digits
from keras_tl.heads import fit_multi_label_head
from keras_tl.heads import get_thresholds
from keras_tl.multi_label import best_f1_thresholds
from keras_tl.multi_label import encode_labels
from keras_tl.multi_label import multi_hot
from keras_tl.multi_label import multi_label_scores
from keras_tl.multi_label import multi_label_weights

NAMES = [str(d) for d in range(10)]


def digits_backbone(source):
    copy = keras.models.clone_model(source)
    copy.set_weights(source.get_weights())
    return keras.Model(copy.input, copy.get_layer("avg_pool").output, name="digits_backbone")


@pytest.fixture(scope="module")
def multi_digits():
    """Images of one to three digits: 240 to train, 120 to validate, 300 held out."""
    x, y = load_multi_label_digits(240, "train", seed=0)
    xv, yv = load_multi_label_digits(120, "train", seed=1)
    xt, yt = load_multi_label_digits(300, "test", seed=0)
    return (x.astype("float32"), y), (xv.astype("float32"), yv), (xt.astype("float32"), yt)


@pytest.fixture(scope="module")
def multi_model(mnist_cnn_small, multi_digits):
    """`feature_extraction` on the multi-label digits (closed-form head)."""
    train, validation, _ = multi_digits
    return keras_tl.feature_extraction(digits_backbone(mnist_cnn_small), train, validation,
                                       class_names=NAMES, verbose=0)


# --- labels -----------------------------------------------------------------


def test_three_label_forms_make_one_multi_label_task(tmp_path):
    from PIL import Image

    matrix = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    lists = [["rust", "spot"], ["healthy"], []]
    y, names, multi = encode_labels(lists)
    assert multi and names == ["healthy", "rust", "spot"]
    np.testing.assert_array_equal(y, [[0, 1, 1], [1, 0, 0], [0, 0, 0]])
    y2, names2, multi2 = encode_labels(matrix)
    assert multi2 and names2 is None and y2.dtype == np.float32
    # One class per example stays what it was.
    assert encode_labels(["rust", "spot"])[2] is False
    # A CSV of image files, names joined by a delimiter.
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "labels.csv").write_text(
        "image,label\n0.png,rust;spot\n1.png,healthy\n2.png,\n")
    data = keras_tl.as_dataset(str(tmp_path / "labels.csv"), label_delimiter=";",
                               batch_size=3, shuffle=False)
    assert data.multi_label and data.class_names == ["healthy", "rust", "spot"]
    images, labels = next(iter(data.train))
    np.testing.assert_array_equal(labels.numpy(), y)
    assert images.shape == (3, 8, 8, 3)
    # Arrays: a 0/1 matrix, and lists of names.
    arrays = keras_tl.as_dataset((np.zeros((3, 8, 8, 3)), matrix))
    assert arrays.multi_label and arrays.num_classes == 3
    named = keras_tl.as_dataset((np.zeros((3, 8, 8, 3)), lists))
    assert named.multi_label and named.class_names == ["healthy", "rust", "spot"]
    # Texts too.
    texts = keras_tl.as_dataset((["a b", "c", "d"], lists))
    assert texts.multi_label and texts.labels.shape == (3, 3)


def test_bad_multi_label_labels_name_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match=r"must be 0 or 1 \(e.g. 2 at row 1\)"):
        multi_hot(np.array([[1, 0], [2, 0]]))
    with pytest.raises(ValueError, match="'blight' at row 1, which is not among"):
        multi_hot([["rust"], ["blight"]], class_names=["rust", "spot"])
    (tmp_path / "labels.csv").write_text("image,label\nmissing.png,rust\n")
    with pytest.raises(FileNotFoundError, match=r"names 1 image file\(s\) that do not exist"):
        keras_tl.as_dataset(str(tmp_path / "labels.csv"))
    with pytest.warns(UserWarning, match="exactly one class"):
        encode_labels(np.eye(3))


# --- the closed-form head ---------------------------------------------------


def test_head_is_one_vs_rest_logistic_regression_with_class_weights():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 12)).astype(np.float32)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    truth = rng.normal(size=(12, 3))
    y = (unit @ truth + rng.normal(scale=0.3, size=(200, 3)) > [0.0, 0.4, 0.9]).astype(np.float32)
    for class_weight in (None, "balanced"):
        kernel, bias, C, _ = fit_multi_label_head(features, y, C=10.0, steps=400,
                                                  class_weight=class_weight)
        assert C == 10.0
        ours = 1 / (1 + np.exp(-(unit @ kernel + bias)))
        for k in range(3):
            reference = LogisticRegression(C=10.0, class_weight=class_weight, max_iter=5000,
                                           tol=1e-8).fit(unit, y[:, k])
            np.testing.assert_allclose(ours[:, k], reference.predict_proba(unit)[:, 1],
                                       atol=1e-2)
    # "balanced": each class's positives and negatives weigh the same in total.
    positive, negative = multi_label_weights("balanced", y)
    np.testing.assert_allclose(positive * y.sum(0), negative * (len(y) - y.sum(0)))


def test_thresholds_are_the_best_f1_cut_per_class():
    rng = np.random.default_rng(1)
    y = (rng.random((60, 4)) < 0.3).astype(np.float32)
    scores = np.clip(y * 0.4 + rng.random((60, 4)) * 0.6, 0, 1).astype(np.float32)
    thresholds = best_f1_thresholds(y, scores)
    for k in range(4):
        def f1(t):
            predicted = scores[:, k] >= t
            return 2 * (predicted & (y[:, k] > 0)).sum() / (predicted.sum() + y[:, k].sum())
        best = max(f1(t) for t in np.unique(scores[:, k]))
        assert f1(thresholds[k]) == pytest.approx(best)
    # A class with no positive example keeps the default.
    assert best_f1_thresholds(np.zeros((3, 1)), np.ones((3, 1)))[0] == 0.5
    figures = multi_label_scores(y, scores, thresholds)
    assert figures["macro_f1"] == pytest.approx(np.mean(list(figures["f1"].values())))


# --- recipes ----------------------------------------------------------------


@pytest.mark.training_path
def test_feature_extraction_multi_label_end_to_end(multi_model, multi_digits, tmp_path):
    _, _, (xt, yt) = multi_digits
    model = multi_model
    assert model.get_layer("probabilities").activation.__name__ == "sigmoid"
    thresholds = get_thresholds(model)
    assert len(thresholds) == 10 and thresholds != [0.5] * 10
    assert set(model.history.history) >= {"average_precision", "val_average_precision"}

    report = keras_tl.evaluate(model, (xt, yt))
    assert isinstance(report, keras_tl.MultiLabelReport)
    # Chance is the positive rate (about 0.2): the frozen digit features
    # carry most of the answer.
    assert report.mean_average_precision > 0.6
    assert set(report.average_precision) == set(NAMES)
    assert json.loads(json.dumps(report.to_dict()))["per_class"]["3"]["threshold"] == \
        pytest.approx(thresholds[3])
    assert "mean average precision" in str(report)

    sets, scores = keras_tl.predict(model, xt[:20])
    assert scores.shape == (20, 10)
    assert sets == [[NAMES[k] for k in range(10) if s[k] >= thresholds[k]] for s in scores]

    # The thresholds come back with the model, and so do its predictions.
    path = tmp_path / "multi.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert get_thresholds(reloaded) == thresholds
    assert keras_tl.predict(reloaded, xt[:20])[0] == sets
    assert reloaded.evaluate(xt[:20], yt[:20], verbose=0, return_dict=True)[
        "average_precision"] > 0


@pytest.mark.slow
def test_fine_tune_multi_label_trains_with_binary_cross_entropy(mnist_cnn_small, multi_digits):
    train, validation, _ = multi_digits
    model = keras_tl.fine_tune(
        digits_backbone(mnist_cnn_small), train, validation, epochs=2, num_groups=2,
        unfreeze={"every": 1}, class_weight="balanced", label_smoothing=0.1,
        keep_head_if_worse=False, restore_best_weights="val_loss", verbose=0)
    history = model.history.history
    assert "val_average_precision" in history and len(history["loss"]) == 3
    assert get_thresholds(model) is not None
    assert model.loss in ("binary_crossentropy",) or "multi_label" in str(model.loss)


@pytest.mark.slow
def test_in_loop_head_takes_class_weights_in_the_loss(mnist_cnn_small, multi_digits):
    train, validation, _ = multi_digits
    model = keras_tl.feature_extraction(
        digits_backbone(mnist_cnn_small), train, validation, augmentation="light", epochs=1,
        class_weight={0: 3.0}, verbose=0)
    assert "val_average_precision" in model.history.history
    assert get_thresholds(model) is not None


TEXTS = ["good price", "fast delivery", "good price fast delivery", "bad price",
         "slow delivery", "bad price slow delivery", "good film", "bad film"] * 2
TAGS = [["price"], ["delivery"], ["price", "delivery"], ["price"], ["delivery"],
        ["price", "delivery"], [], []] * 2


@pytest.fixture(scope="module")
def tag_model():
    from tests.test_text import tiny_parts

    return keras_tl.text_classifier((TEXTS, TAGS), (TEXTS, TAGS), preset=tiny_parts(),
                                    mode="feature_extraction", verbose=0)


@pytest.mark.training_path
@pytest.mark.slow
def test_text_classifier_multi_label(tag_model, tmp_path):
    texts, model = TEXTS, tag_model
    assert model.class_names == ["delivery", "price"]
    assert get_thresholds(model) is not None
    path = tmp_path / "tags.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert get_thresholds(reloaded) == get_thresholds(model)
    np.testing.assert_allclose(reloaded.predict(texts[:4], verbose=0),
                               model.predict(texts[:4], verbose=0), atol=1e-6)


@pytest.mark.slow
def test_text_fine_tuning_multi_label_keeps_thresholds_from_validation():
    from tests.test_text import tiny_parts

    texts = ["good price", "fast delivery", "good price fast delivery", "bad film"] * 3
    tags = [["price"], ["delivery"], ["price", "delivery"], []] * 3
    model = keras_tl.text_classifier((texts, tags), (texts, tags), preset=tiny_parts(),
                                     epochs=1, batch_size=4, unfreeze={"phases": 1},
                                     class_weight="balanced", verbose=0)
    assert model.history.history["phase"] == ["head", "unfreeze_1"]
    assert "val_average_precision" in model.history.history
    report = keras_tl.evaluate(model, (np.asarray(texts, dtype=object), tags))
    assert report.class_names == ["delivery", "price"] and len(report.labels) == 12


# --- export -----------------------------------------------------------------


@pytest.mark.tensorflow_only
def test_multi_label_exports_run_in_mediapipe_with_sigmoid_scores(multi_model, multi_digits,
                                                                  tmp_path):
    pytest.importorskip("mediapipe")
    from tests.test_export_metadata import _mediapipe_image_scores

    _, _, (xt, yt) = multi_digits
    model = multi_model
    path = tmp_path / "multi.tflite"
    report = keras_tl.to_tflite(model, path, check_data=(xt[:64], yt[:64]))
    assert report.metadata == "image_classifier"
    assert report.thresholds == dict(zip(NAMES, get_thresholds(model)))
    assert report.label_agreement == 1.0
    saved = json.loads(open(report.report_path).read())
    assert saved["thresholds"]["7"] == pytest.approx(get_thresholds(model)[7])
    # MediaPipe gives every class its own sigmoid score (no softmax over
    # them): several can be high at once, as in Keras. (The grayscale model
    # takes RGB in the file, as MediaPipe needs.)
    scores, names = _mediapipe_image_scores(path, np.repeat(xt[:64], 3, -1), 10)
    assert names == NAMES
    np.testing.assert_allclose(scores, model.predict(xt[:64], verbose=0), atol=1e-4)
    assert (scores.sum(1) > 1.2).any()


# --- command line -------------------------------------------------------------


def test_cli_trains_evaluates_and_predicts_from_a_multi_label_csv(mnist_cnn_small, tmp_path,
                                                                   capfd):
    from PIL import Image

    from keras_tl.cli import main

    x, y = load_multi_label_digits(90, "train", seed=2)
    rows = ["file,digits"]
    for i, (image, labels) in enumerate(zip(x, y)):
        Image.fromarray(image[..., 0]).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png," + " ".join(NAMES[k] for k in np.flatnonzero(labels)))
    (tmp_path / "digits.csv").write_text("\n".join(rows) + "\n")
    # Image files are read as RGB: gray from them by a fixed 1x1 convolution
    # (as `keras-tl samples` writes its backbone).
    rgb = keras.Input((28, 28, 3))
    to_gray = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False)
    features = digits_backbone(mnist_cnn_small)(to_gray(rgb))
    to_gray.set_weights([np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 1, 3, 1)])
    backbone = tmp_path / "backbone.keras"
    keras.Model(rgb, features).save(backbone)
    model = tmp_path / "tags.keras"
    columns = ["--image-column", "file", "--label-column", "digits", "--label-delimiter", " "]
    assert main(["train", str(tmp_path / "digits.csv"), "--backbone", str(backbone),
                 "--output", str(model)] + columns) == 0
    assert get_thresholds(keras.saving.load_model(model)) is not None
    assert main(["evaluate", str(model), str(tmp_path / "digits.csv")] + columns) == 0
    saved = json.loads((tmp_path / "tags.evaluation.json").read_text())
    assert saved["multi_label"] and 0 < saved["mean_average_precision"] <= 1
    capfd.readouterr()
    assert main(["predict", str(model), str(tmp_path / "digits.csv"), "--image-column",
                 "file"]) == 0
    lines = capfd.readouterr().out.strip().splitlines()
    assert len(lines) == 90 and lines[0].startswith(str(tmp_path / "0.png") + "\t")


def test_recipes_of_one_class_per_example_refuse_multi_label_data(mnist_cnn_small,
                                                                  multi_digits):
    (x, y), _, _ = multi_digits
    with pytest.raises(ValueError, match="distill takes one class per example"):
        keras_tl.distill(mnist_cnn_small, "small_cnn", (x[:16], y[:16]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="adapt_domain takes one class per example"):
        keras_tl.adapt_domain(mnist_cnn_small, (x[:16], y[:16]), x[:16], method="coral",
                              epochs=1, verbose=0)


@pytest.mark.tensorflow_only
@pytest.mark.slow
def test_multi_label_text_export_runs_in_mediapipe(tag_model, tmp_path):
    pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python import text

    path = tmp_path / "tags.tflite"
    report = keras_tl.export.text_to_tflite(tag_model, path, check_data=TEXTS[:8])
    assert report.metadata == "text_classifier"
    assert list(report.thresholds) == ["delivery", "price"]
    options = text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)))
    scores = np.zeros((8, 2), np.float32)
    with text.TextClassifier.create_from_options(options) as classifier:
        for i, sentence in enumerate(TEXTS[:8]):
            for category in classifier.classify(sentence).classifications[0].categories:
                scores[i, category.index] = category.score
    # Each class's own sigmoid score, as Keras computes it from the same tokens.
    np.testing.assert_allclose(scores, tag_model.predict(TEXTS[:8], verbose=0), atol=1e-4)
