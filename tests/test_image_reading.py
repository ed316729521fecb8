"""One reading of every image: the folder scan accepts exactly what training
decodes, the way PIL shows it; validation folders match classes by name."""

import numpy as np
import pytest
from PIL import Image

from keras_tl.data import as_dataset
from keras_tl.data import scan_image_folder
from keras_tl.data import to_arrays


def _png(path, value, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def _two_classes(root):
    for name, value in (("cat", 40), ("dog", 200)):
        for i in range(2):
            _png(root / name / f"{i}.png", value)


def _pixels(root, **kwargs):
    data = as_dataset(str(root), batch_size=16, shuffle=False, **kwargs)
    return to_arrays(data.train)


def test_palette_and_one_bit_bmps_read_as_pil_shows_them(tmp_path):
    _two_classes(tmp_path)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = (250, 10, 10)
    rgb[:, 4:] = (10, 10, 250)
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=4).save(
        tmp_path / "cat" / "palette.bmp")
    bits = np.zeros((8, 8), bool)
    bits[:, 4:] = True
    Image.fromarray(bits).save(tmp_path / "dog" / "bits.bmp")
    paths, _, _, via_pil = scan_image_folder(tmp_path, with_decoders=True)
    assert sorted(p.rsplit("/", 1)[-1] for p, pil in zip(paths, via_pil) if pil) == [
        "bits.bmp", "palette.bmp"]
    images, labels = _pixels(tmp_path)
    names = [p.rsplit("/", 1)[-1] for p in paths]
    palette = images[names.index("palette.bmp")]
    shown = np.asarray(Image.open(tmp_path / "cat" / "palette.bmp").convert("RGB"))
    np.testing.assert_allclose(palette, shown, atol=1)
    assert palette[0, 0, 0] > 200 and palette[0, 7, 2] > 200  # colours, not indices
    one_bit = images[names.index("bits.bmp")]
    assert one_bit[0, 0].tolist() == [0, 0, 0] and one_bit[0, 7].tolist() == [255, 255, 255]


def test_files_whose_bytes_are_not_their_extension_are_skipped_and_named(tmp_path):
    _two_classes(tmp_path)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "cat" / "x.png",
                                                         format="TIFF")
    with pytest.warns(UserWarning, match=r"x\.png"):
        paths, _, _ = scan_image_folder(tmp_path)
    assert not any(p.endswith("x.png") for p in paths)
    images, _ = _pixels(tmp_path)
    assert len(images) == 4


def test_hidden_folders_are_ignored_at_any_depth(tmp_path):
    _two_classes(tmp_path)
    _png(tmp_path / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png", 0)
    _png(tmp_path / "dog" / "more" / ".cache" / "a.png", 0)
    _png(tmp_path / "dog" / "more" / "b.png", 200)
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"\0\0")
    paths, labels, names = scan_image_folder(tmp_path)
    assert names == ["cat", "dog"]
    assert len(paths) == 5 and not any("/." in p for p in paths)


def test_validation_folder_matches_training_classes_by_name(tmp_path):
    train = tmp_path / "train"
    for name, value in (("ant", 10), ("bee", 120), ("cat", 240)):
        _png(train / name / "0.png", value)
        _png(train / name / "1.png", value)
    validation = tmp_path / "validation"
    _png(validation / "bee" / "0.png", 120)
    _png(validation / "cat" / "0.png", 240)  # no "ant": the rest must not shift
    data = as_dataset(str(train), validation_data=str(validation), batch_size=8,
                      shuffle=False)
    images, labels = to_arrays(data.validation)
    assert labels.tolist() == [1, 2]
    assert images[:, 0, 0, 0].tolist() == [120, 240]
    _png(tmp_path / "validation" / "zebra" / "0.png", 0)
    with pytest.raises(ValueError, match=r"zebra.*training data does not have"):
        as_dataset(str(train), validation_data=str(validation), batch_size=8)


def test_validation_string_labels_use_the_training_names():
    x = np.zeros((4, 8, 8, 3), np.float32)
    data = as_dataset((x, np.array(["bee", "cat", "bee", "cat"])),
                      validation_data=(x[:2], np.array(["cat", "cat"])), batch_size=4)
    _, labels = to_arrays(data.validation)
    assert data.class_names == ["bee", "cat"] and labels.tolist() == [1, 1]
    with pytest.raises(ValueError, match="not among class_names"):
        as_dataset((x, np.array(["bee", "cat", "bee", "cat"])),
                   validation_data=(x[:1], np.array(["ant"])), batch_size=4)


def test_predict_reads_a_palette_bmp_as_training_does(tmp_path):
    import keras

    import keras_tl

    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :, 0] = 250
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=2).save(
        tmp_path / "p.bmp")
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Lambda(
        lambda t: keras.ops.softmax(
            keras.ops.stack([t[:, 0, 0, 0], t[:, 0, 0, 2]], axis=-1) / 10))(inputs))
    labels, scores = keras_tl.predict(model, [str(tmp_path / "p.bmp")], top_k=2)
    # Red (250) against blue (0) as PIL shows the pixel; palette indices
    # would give both channels the same value and a tie.
    assert labels[0][0] == "0" and scores[0][0] > 0.99
