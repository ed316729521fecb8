import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_tl.data import as_dataset, scan_image_folder
from keras_tl.examples.datasets import few_shot_split, load_digits_target, load_mnist_5k


def _write_folder(root, classes=("cat", "dog"), per_class=3, size=(12, 10)):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_folder_becomes_batched_dataset_with_class_names(tmp_path):
    _write_folder(tmp_path)
    data = as_dataset(tmp_path, batch_size=4, shuffle=False)
    assert data.class_names == ["cat", "dog"]
    assert data.image_shape == (12, 10, 3)
    images, labels = next(iter(data.train))
    assert images.shape == (4, 12, 10, 3) and images.dtype == tf.float32
    assert labels.numpy().tolist() == [0, 0, 0, 1]


def test_corrupt_and_non_image_files_are_skipped_with_a_warning(tmp_path):
    _write_folder(tmp_path)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.warns(UserWarning, match=r"broken\.jpg.*|notes\.txt"):
        paths, labels, names = scan_image_folder(tmp_path)
    assert len(paths) == 6 and not any("broken" in p or "notes" in p for p in paths)


def test_folder_errors(tmp_path):
    _write_folder(tmp_path / "one", classes=("only",))
    with pytest.raises(ValueError, match="at least two"):
        as_dataset(tmp_path / "one")
    _write_folder(tmp_path / "empty")
    (tmp_path / "empty" / "bird").mkdir()
    with pytest.raises(ValueError, match="bird.*no readable image"):
        as_dataset(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        as_dataset(tmp_path / "missing")


def test_array_errors():
    x = np.zeros((4, 8, 8, 3))
    with pytest.raises(ValueError, match="different lengths: 4 images but 3 labels"):
        as_dataset((x, np.array([0, 1, 0])))
    with pytest.raises(ValueError, match="out of range"):
        as_dataset((x, np.array([0, 1, 2, 5])), num_classes=3)
    with pytest.raises(ValueError, match="out of range"):
        as_dataset((x, np.array([0, -1, 1, 1])))
    with pytest.raises(ValueError, match="at least two classes"):
        as_dataset((x, np.zeros(4, int)))
    with pytest.raises(TypeError, match="folder path"):
        as_dataset([1, 2, 3])


def test_seeded_validation_split_is_reproducible_and_disjoint():
    x = np.arange(50, dtype=np.float32).reshape(50, 1, 1, 1)
    y = np.arange(50) % 2

    def ids(ds):
        return sorted(int(v.ravel()[0]) for v, _ in ds.unbatch().as_numpy_iterator())

    a = as_dataset((x, y), validation_split=0.2, seed=3)
    b = as_dataset((x, y), validation_split=0.2, seed=3)
    assert ids(a.validation) == ids(b.validation)
    assert len(ids(a.validation)) == 10
    assert set(ids(a.validation)).isdisjoint(ids(a.train))


def test_tf_dataset_input_batched_or_not_with_split():
    x = np.random.default_rng(0).uniform(0, 255, (40, 8, 8, 3)).astype("float32")
    y = np.arange(40) % 4
    for ds in (tf.data.Dataset.from_tensor_slices((x, y)),
               tf.data.Dataset.from_tensor_slices((x, y)).batch(7)):
        data = as_dataset(ds, batch_size=8, validation_split=0.25, seed=1)
        n_train = sum(int(b.shape[0]) for b, _ in data.train)
        n_val = sum(int(b.shape[0]) for b, _ in data.validation)
        assert n_train + n_val == 40 and 0 < n_val < 40
        assert data.num_classes == 4 and data.image_shape == (8, 8, 3)


def test_bundled_datasets_are_real_digits():
    x, y = load_mnist_5k()
    assert x.shape == (5000, 28, 28, 1) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [500] * 10
    assert x.max() == 255 and x.mean() > 10
    xt, yt = load_digits_target()
    assert xt.shape == (1797, 28, 28, 1) and set(yt) == set(range(10))
    # Digits sit in the centre 20x20 like MNIST: the border is empty.
    assert xt[:, :4].max() == 0 and xt[:, 4:24, 4:24].max() == 255
    (xs, ys), (xh, yh) = few_shot_split(xt, yt, 2, seed=0)
    assert np.bincount(ys).tolist() == [2] * 10 and len(xs) + len(xh) == 1797
