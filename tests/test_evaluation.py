"""`keras_tl.evaluate` and `keras_tl.predict`, and plots that leave pyplot alone."""

import json

import keras
import matplotlib
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_tl
from keras_tl import plots
from keras_tl.heads import ClassNames


def _classifier(names=("cat", "dog", "fox")):
    """Predicts class `argmax` of the three pixel channels' means, with a
    confidence that grows with the gap: known answers without training."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Lambda(lambda t: t / 10.0)(x)
    x = keras.layers.Activation("softmax", name="probabilities")(x)
    x = ClassNames(list(names), name="class_names")(x)
    return keras.Model(inputs, x)


def _images(channel_values):
    """One 8x8 image per row of `channel_values` (r, g, b)."""
    return np.stack([np.ones((8, 8, 3), "float32") * np.asarray(v, "float32")
                     for v in channel_values])


def test_evaluate_report_counts_and_worst_mistakes(tmp_path):
    model = _classifier()
    x = _images([(90, 0, 0), (0, 90, 0), (0, 0, 90), (0, 90, 0), (0, 0, 40), (0, 0, 20)])
    y = np.array([0, 1, 2, 0, 1, 0])  # the last three are wrong, 90 > 40 > 20 sure
    report = keras_tl.evaluate(model, (x, y), top_k_wrong=2)
    assert report.accuracy == pytest.approx(0.5)
    assert report.class_names == ["cat", "dog", "fox"]
    assert report.support == {"cat": 3, "dog": 2, "fox": 1}
    assert report.recall["cat"] == pytest.approx(1 / 3)
    assert report.precision["fox"] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(report.confusion_matrix,
                                  [[1, 1, 1], [0, 1, 1], [0, 0, 1]])
    worst = report.most_confidently_wrong
    assert [w["index"] for w in worst] == [3, 4]
    assert worst[0]["true"] == "cat" and worst[0]["predicted"] == "dog"
    assert worst[0]["confidence"] > worst[1]["confidence"]

    saved = json.loads(json.dumps(report.to_dict()))
    assert saved["per_class"]["dog"] == {"precision": 0.5, "recall": 0.5, "support": 2}
    assert "accuracy 0.5000 (balanced 0.6111) on 6 examples" in str(report)
    fig = report.plot_confusion_matrix(tmp_path / "cm.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert (tmp_path / "cm.png").stat().st_size > 0


def test_evaluate_folder_and_dataset_agree(tmp_path):
    model = _classifier()
    colors = {"cat": (200, 0, 0), "dog": (0, 200, 0), "fox": (0, 0, 200)}
    for name, color in colors.items():
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(np.full((12, 12, 3), color, np.uint8)).save(
                tmp_path / name / f"{i}.png")
    from_folder = keras_tl.evaluate(model, str(tmp_path))
    assert from_folder.accuracy == 1.0 and from_folder.support["fox"] == 2

    x = _images([(90, 0, 0), (0, 0, 90)])
    dataset = tf.data.Dataset.from_tensor_slices((x, np.array([0, 1]))).batch(1)
    from_dataset = keras_tl.evaluate(model, dataset)
    assert from_dataset.accuracy == 0.5


def test_evaluate_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match="Labels must lie in"):
        keras_tl.evaluate(_classifier(), (_images([(1, 0, 0)]), np.array([5])))


def test_predict_paths_and_arrays(tmp_path):
    model = _classifier()
    path = tmp_path / "green.png"
    Image.fromarray(np.full((20, 30, 3), (0, 180, 0), np.uint8)).save(path)
    labels, scores = keras_tl.predict(model, [str(path)])
    assert labels == ["dog"] and scores.shape == (1,) and scores[0] > 0.9

    labels, scores = keras_tl.predict(model, _images([(0, 0, 50), (5, 0, 0)]), top_k=2)
    assert labels[0] == ["fox", "cat"] and scores.shape == (2, 2)
    assert np.all(scores[:, 0] >= scores[:, 1])
    one, _ = keras_tl.predict(model, _images([(0, 0, 50)])[0])
    assert one == ["fox"]

    with pytest.raises(FileNotFoundError, match="missing.png"):
        keras_tl.predict(model, str(tmp_path / "missing.png"))


def test_plots_return_figures_and_keep_the_pyplot_backend(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("matplotlib.use switches a notebook's backend")

    monkeypatch.setattr(matplotlib, "use", refuse)
    backend = matplotlib.get_backend()
    history = {"loss": [1.0, 0.5], "accuracy": [0.5, 0.8], "val_loss": [1.1, 0.7]}
    fig = plots.plot_history(history)
    assert isinstance(fig, matplotlib.figure.Figure)
    fig = plots.plot_history(history, tmp_path / "sub" / "curves.png", title="run")
    assert (tmp_path / "sub" / "curves.png").stat().st_size > 0
    fig = plots.plot_confusion_matrix([0, 1, 1], [0, 1, 0], ["a", "b"], tmp_path / "cm.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    result = keras_tl.LRFinderResult(
        learning_rates=[1e-4, 1e-3, 1e-2], losses=[1.0, 0.8, 2.0],
        smoothed_losses=[1.0, 0.9, 1.5], suggestion=1e-3, steepest=1e-3, minimum=1e-3)
    assert isinstance(result.plot(tmp_path / "lr.png"), matplotlib.figure.Figure)
    assert (tmp_path / "lr.png").stat().st_size > 0
    assert matplotlib.get_backend() == backend


def test_evaluate_names_worst_mistakes_by_file_and_draws_them(tmp_path):
    import keras
    from PIL import Image

    import keras_tl

    # A model that always answers "b": every "a" image is a confident mistake.
    for name, value in (("a", 0), ("b", 255)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(
                tmp_path / "data" / name / f"{name}{i}.png")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(2, activation="softmax")
    outputs = dense(x)
    dense.set_weights([np.zeros((3, 2), np.float32), np.array([0.0, 3.0], np.float32)])
    model = keras.Model(inputs, outputs)
    report = keras_tl.evaluate(model, str(tmp_path / "data"), top_k_wrong=2)
    assert report.accuracy == 0.5
    files = [w["file"] for w in report.most_confidently_wrong]
    assert len(files) == 2 and all(f.startswith(str(tmp_path / "data" / "a")) for f in files)
    assert files[0] in str(report)
    assert report.wrong_images.shape == (2, 8, 8, 3)
    figure = report.plot_worst(tmp_path / "worst.png")
    assert (tmp_path / "worst.png").stat().st_size > 0
    assert "a -> b" in figure.axes[0].get_title()
    assert "file" in report.to_dict()["most_confidently_wrong"][0]


def test_show_batch_and_plot_history_refusal(tmp_path):
    import keras

    import keras_tl

    x = np.random.default_rng(0).uniform(0, 255, (6, 8, 8, 3)).astype("float32")
    figure = keras_tl.show_batch((x, np.array([0, 1, 0, 1, 0, 1])), count=4,
                                 path=tmp_path / "batch.png")
    assert len(figure.axes) == 4 and figure.axes[1].get_title() == "1"
    assert (tmp_path / "batch.png").exists()
    reloaded = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="does not keep its history"):
        keras_tl.plot_history(reloaded)
    with pytest.raises(ValueError, match="No training history"):
        keras_tl.plot_history({})


def test_balanced_accuracy_weighs_every_class_the_same():
    import keras_tl

    # 8 examples of class 0 (all right), 2 of class 1 (all wrong).
    x = np.concatenate([np.zeros((8, 4, 4, 3)), np.full((2, 4, 4, 3), 255.0)])
    y = np.array([0] * 8 + [1] * 2)
    inputs = keras.Input((4, 4, 3))
    outputs = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant([1.0, 0.0]))(
        keras.layers.GlobalAveragePooling2D()(inputs))
    report = keras_tl.evaluate(keras.Model(inputs, outputs), (x, y))
    assert report.accuracy == 0.8 and report.balanced_accuracy == 0.5
    assert report.to_dict()["balanced_accuracy"] == 0.5
    assert "balanced 0.5000" in str(report)


def test_tta_averages_each_image_with_its_mirror():
    import keras_tl

    # Class 1 scores the left half's brightness, class 0 the right half's:
    # an image and its mirror get swapped scores, so their mean is 0.5.
    kernel = np.zeros((4, 4, 1, 2), np.float32)
    kernel[:, :2, 0, 1] = 0.01
    kernel[:, 2:, 0, 0] = 0.01
    inputs = keras.Input((4, 4, 1))
    dense = keras.layers.Dense(2, activation="softmax", use_bias=False)
    outputs = dense(keras.layers.Flatten()(inputs))
    dense.set_weights([kernel.reshape(16, 2)])
    model = keras.Model(inputs, outputs)
    image = np.zeros((1, 4, 4, 1), np.float32)
    image[:, :, :2] = 255.0
    labels, plain = keras_tl.predict(model, image)
    assert labels == ["1"] and plain[0] > 0.99
    _, averaged = keras_tl.predict(model, image, tta=True)
    np.testing.assert_allclose(averaged, [0.5], atol=1e-6)
    assert keras_tl.evaluate(model, (image, np.array([1]))).accuracy == 1.0
    # With the mirror, both classes score 0.5: the tie goes to class 0.
    report = keras_tl.evaluate(model, (image, np.array([1])), tta=True)
    assert report.accuracy == 0.0
    assert report.most_confidently_wrong[0]["confidence"] == pytest.approx(0.5)



def test_tta_with_crops_averages_six_views():
    import keras_tl
    from keras_tl.evaluation import tta_views

    # A model that scores the brightness of the top-left corner: crops move
    # it, so the six views give different scores.
    inputs = keras.Input((8, 8, 1))
    pooled = keras.layers.Flatten()(inputs[:, :2, :2, :])
    logits = keras.layers.Dense(2, use_bias=False)(pooled / 255.0)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    model.layers[-2].set_weights([np.array([[1.0, -1.0]] * 4, np.float32)])
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (3, 8, 8, 1)).astype("float32")
    views = tta_views(images, "flip_crop")
    assert len(views) == 6 and all(v.shape == images.shape for v in views)
    # The mirror, and a corner crop resized back: 7 of 8 pixels per side.
    np.testing.assert_array_equal(views[1], images[:, :, ::-1])
    expected = np.mean([model.predict(v, verbose=0) for v in views], axis=0)
    # predict's top-2 (names, scores) per image, back in class order.
    per_class = np.array([[dict(zip(*row))["0"], dict(zip(*row))["1"]] for row in zip(
        *keras_tl.predict(model, images, tta="flip_crop", top_k=2))])
    np.testing.assert_allclose(per_class, expected, atol=1e-6)
    assert not np.allclose(expected, model.predict(images, verbose=0), atol=1e-3)
    with pytest.raises(ValueError, match="tta must be False, True or one of"):
        keras_tl.predict(model, images, tta="rotate")
