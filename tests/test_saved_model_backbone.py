"""SavedModels (TF Hub's reusable format and Keras' `model.export()`) as
backbones, on SavedModels these tests write: offline, no hub download."""

import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.examples.pretrained import write_reusable_saved_model
from keras_tl.saved_model_backbone import SavedModelBackbone
from keras_tl.saved_model_backbone import build_saved_model_backbone

pytestmark = pytest.mark.tensorflow_only

SIZE = 16


def _write_reusable(folder):
    """A TF Hub-style reusable SavedModel: conv -> BatchNorm -> ReLU -> mean,
    `__call__(images in [0, 1], training)`, `variables`,
    `trainable_variables`, `regularization_losses`."""
    rng = np.random.default_rng(0)
    root = tf.train.Checkpoint()
    root.kernel = tf.Variable(rng.normal(0, 0.5, (3, 3, 3, 6)).astype("float32"), name="conv/kernel")
    root.gamma = tf.Variable(tf.ones(6), name="bn/gamma")
    root.beta = tf.Variable(tf.zeros(6), name="bn/beta")
    root.moving_mean = tf.Variable(tf.fill([6], 0.1), trainable=False, name="bn/moving_mean")
    root.moving_var = tf.Variable(tf.ones(6), trainable=False, name="bn/moving_variance")

    @tf.function
    def call(images, training=False):
        x = tf.nn.conv2d(images, root.kernel, 1, "SAME")
        if training:
            mean, var = tf.nn.moments(x, [0, 1, 2])
            root.moving_mean.assign(0.9 * root.moving_mean + 0.1 * mean)
            root.moving_var.assign(0.9 * root.moving_var + 0.1 * var)
        else:
            mean, var = root.moving_mean, root.moving_var
        x = tf.nn.batch_normalization(x, mean, var, root.beta, root.gamma, 1e-3)
        return tf.reduce_mean(tf.nn.relu(x), [1, 2])

    spec = tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)
    for training in (True, False):
        call.get_concrete_function(spec, training=training)
    root.__call__ = call
    regularization = tf.function(lambda: 1e-3 * tf.reduce_sum(root.kernel ** 2),
                                 input_signature=[])
    regularization.get_concrete_function()
    root.regularization_losses = [regularization]
    root.variables = [root.kernel, root.gamma, root.beta, root.moving_mean, root.moving_var]
    root.trainable_variables = [root.kernel, root.gamma, root.beta]
    tf.saved_model.save(root, str(folder))
    return str(folder)


def _images(count=24, seed=0):
    # Dark images are class 0, bright ones class 1.
    rng = np.random.default_rng(seed)
    y = np.arange(count) % 2
    x = rng.uniform(0, 100, (count, SIZE, SIZE, 3)) + 150 * y[:, None, None, None]
    return x.astype("float32"), y


@pytest.fixture(scope="module")
def reusable(tmp_path_factory):
    return _write_reusable(tmp_path_factory.mktemp("hub") / "reusable")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A frozen feature extractor written by Keras' `model.export()`, and
    the Keras model itself."""
    keras.utils.set_random_seed(0)
    cnn = keras_tl.build_small_cnn((SIZE, SIZE, 3), 2, width=8)
    features = keras.Model(cnn.input, cnn.get_layer("avg_pool").output)
    folder = str(tmp_path_factory.mktemp("export") / "features")
    features.export(folder, verbose=False)
    return folder, features


def test_exported_keras_model_extracts_the_same_features(exported):
    folder, features = exported
    backbone = keras_tl.build_backbone(folder, input_shape=(SIZE, SIZE, 3))
    # `model.export()` of a Keras model takes what the model takes (a
    # keras-tl model rescales inside): no pixel scaling in front.
    layer = backbone.get_layer("saved_model")
    assert isinstance(layer, SavedModelBackbone) and not layer.trainable
    assert not layer.reusable and "preprocessing" not in [l.name for l in backbone.layers]
    x, _ = _images()
    np.testing.assert_allclose(backbone.predict(x, verbose=0), features.predict(x, verbose=0),
                               atol=1e-5)
    with pytest.raises(ValueError, match="only a serving signature"):
        SavedModelBackbone(folder, trainable=True)


def test_feature_extraction_and_fine_tuning_on_a_reusable_saved_model(reusable):
    x, y = _images()
    model = keras_tl.feature_extraction(reusable, (x, y), (x, y), verbose=0)
    assert model.history.history["val_accuracy"][-1] == 1.0
    layer = [l for l in model.get_layer("saved_model_backbone").layers
             if isinstance(l, SavedModelBackbone)][0]
    # The graph's own variables are the layer's weights: wrapped, not copied.
    assert {v.path.split("/")[-1] for v in layer.weights} >= {"conv_kernel", "bn_moving_mean"}

    backbone = build_saved_model_backbone(reusable, trainable=True)
    # TF Hub's convention: images in [0, 1], so raw pixels are rescaled.
    assert backbone.get_layer("preprocessing").scale == 1.0 / 255.0
    inner = backbone.get_layer("saved_model")
    kernel = [v for v in inner.weights if v.name == "conv_kernel"][0]
    moving = [v for v in inner.weights if v.name == "bn_moving_mean"][0]
    before_kernel, before_moving = kernel.numpy().copy(), moving.numpy().copy()
    head = keras.layers.Dense(2, activation="softmax")
    classifier = keras.Model(backbone.input, head(backbone.output))
    classifier.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    classifier.fit(x, y, epochs=2, batch_size=8, verbose=0)
    # Adam trained the graph's kernel; BatchNorm stayed in inference mode.
    assert not np.allclose(kernel.numpy(), before_kernel)
    np.testing.assert_array_equal(moving.numpy(), before_moving)
    assert inner.losses, "the SavedModel's regularization loss joins the model's losses"


@pytest.mark.slow
def test_saved_model_travels_inside_the_keras_file(reusable, tmp_path):
    import shutil

    x, y = _images()
    source = tmp_path / "reusable"
    shutil.copytree(reusable, source)
    model = keras_tl.feature_extraction(str(source), (x, y), verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    expected = model.predict(x, verbose=0)
    shutil.rmtree(source)
    # Stored once: the SavedModel (with the variables) in the assets, and
    # none of its variables again in the weights file.
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert any(n.endswith("saved_model/saved_model.pb") for n in names), names
        archive.extract("model.weights.h5", tmp_path)
    stored = []
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        weights.visit(stored.append)
    assert not [n for n in stored if "conv_kernel" in n or "moving_mean" in n]
    np.save(tmp_path / "x.npy", x)
    # Under safe_mode=True the graph (code) is refused, saying how to load it.
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.saving.load_model(path)
    # Another process, the original folder gone.
    from keras_tl._utils.processes import python_command

    code = (
        "import sys, numpy as np, keras, keras_tl\n"
        "model = keras.saving.load_model(sys.argv[1], safe_mode=False)\n"
        "np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))\n"
    )
    out = tmp_path / "reloaded.npy"
    own_temporary = tmp_path / "temporary"
    own_temporary.mkdir()
    done = subprocess.run(
        python_command(code=code, args=[str(path), str(tmp_path / "x.npy"), str(out)]),
        timeout=300, capture_output=True, text=True, cwd=tmp_path,
        env=dict(os.environ, KERAS_BACKEND="tensorflow", TMPDIR=str(own_temporary)))
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)
    # The copy of the SavedModel the reloaded graph reads is gone with the
    # process that loaded it.
    assert not list(own_temporary.glob("keras_tl_saved_model_*"))


def test_saved_model_backbone_exports_to_litert_with_parity(reusable, tmp_path):
    x, y = _images()
    model = keras_tl.feature_extraction(reusable, (x, y), verbose=0)
    report = keras_tl.to_tflite(model, tmp_path / "hub.tflite", check_data=(x, y))
    assert report.top1_agreement == 1.0 and report.max_abs_diff < 1e-4


def test_offline_handle_fails_at_once_with_the_way_out(monkeypatch):
    from keras_tl._utils import presets

    monkeypatch.setattr(presets, "host_reachable", lambda host: (False, "no network"))
    handle = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5"
    with pytest.raises(ConnectionError, match="tfhub.dev is unreachable.*copy the folder"):
        keras_tl.build_backbone(handle)
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        SavedModelBackbone(os.getcwd())


def test_rank_backbones_over_a_saved_model_and_a_keras_model(reusable, exported):
    x, y = _images()
    folder, features = exported
    ranking = keras_tl.rank_backbones(
        {"hub": reusable, "export": folder, "keras": features}, (x, y), verbose=0)
    assert set(ranking.names()) == {"hub", "export", "keras"}


@pytest.mark.slow
def test_other_backends_get_an_error_that_names_tensorflow(reusable, tmp_path):
    from keras_tl._utils.processes import python_command

    code = (
        "import sys, keras_tl\n"
        "try:\n"
        "    keras_tl.build_backbone(sys.argv[1])\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(python_command(code=code, args=[reusable]), capture_output=True,
                          text=True, timeout=300, cwd=tmp_path,
                          env=dict(os.environ, KERAS_BACKEND="jax"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "needs KERAS_BACKEND=tensorflow (the backend is 'jax')" in done.stdout


@pytest.mark.filterwarnings("ignore:fine_tune")
@pytest.mark.slow
def test_a_saved_model_is_split_into_depth_groups_and_unfrozen_from_the_top(tmp_path):
    keras.utils.set_random_seed(0)
    cnn = keras_tl.build_small_cnn((SIZE, SIZE, 3), 2, width=8)
    folder = write_reusable_saved_model(
        keras.Model(cnn.input, cnn.get_layer("avg_pool").output), tmp_path / "cnn")
    backbone = build_saved_model_backbone(folder, trainable=True)
    layer = backbone.get_layer("saved_model")
    stages = keras_tl.get_stages(backbone, num_groups=3)
    assert [s.name for s in stages] == ["group1", "group2", "group3"]
    # Each conv keeps its BatchNorm; the groups follow the graph's order and
    # hold every trainable variable once.
    names = [[v.name for v in s.variables] for s in stages]
    assert names[0][0] == "block1_conv_kernel"
    assert {"block1_bn_gamma", "block1_bn_moving_mean"} <= set(names[0])
    kernels = [n for group in names for n in group if n.endswith("conv_kernel")]
    assert kernels == sorted(kernels) and len(kernels) >= 3
    flat = [n for group in names for n in group]
    assert sorted(flat) == sorted(v.name for v in layer.weights)

    x, y = _images(32)
    trainable, after_first_epoch = [], {}

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            trainable.append({v.name for v in layer.trainable_weights})

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                after_first_epoch.update({v.name: v.numpy().copy() for v in layer.weights})

    before = {v.name: v.numpy().copy() for v in layer.weights}
    keras_tl.fine_tune(
        backbone, (x, y), (x, y), epochs=3, unfreeze={"every": 1}, num_groups=3, batch_size=8,
        callbacks=[Watch()], restore_best_weights=False, keep_head_if_worse=False, verbose=0)
    # The top group first, then one more group per epoch; moving statistics
    # are never trainable.
    expected = [{v.name for v in stage.variables if "moving" not in v.name}
                for stage in stages]
    assert trainable == [expected[2], expected[2] | expected[1],
                         expected[2] | expected[1] | expected[0]]
    changed = {n for n in before if not np.array_equal(before[n], after_first_epoch[n])}
    assert changed == expected[2]
    # BatchNorm stayed in inference mode throughout.
    moving = [n for n in before if "moving" in n]
    assert moving
    final = {v.name: v.numpy() for v in layer.weights}
    assert all(np.array_equal(before[n], final[n]) for n in moving)
