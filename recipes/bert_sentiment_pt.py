"""Fine-tune BERT for sentiment analysis of Portuguese text.

Trains `keras_tl.recipes.text_classifier` on a CSV of Portuguese texts with
sentiment labels, saves `sentiment.keras` (loads with `safe_mode=True`) and
prints predictions for a few new sentences.

Public Portuguese data sets that work from Colab (check each licence):

- B2W-Reviews01 (130k product reviews, CC BY-NC-SA 4.0,
  https://github.com/americanas-tech/b2w-reviews01): `B2W-Reviews01.csv`,
  `--text-column review_text --label-column recommend_to_a_friend` (Yes/No),
  or `--label-column overall_rating --positive-from 4` for stars 1-5.
- IMDB PT-BR (50k machine-translated movie reviews, Kaggle
  `luisfredgs/imdb-ptbr`): `imdb-reviews-pt-br.csv`,
  `--text-column text_pt --label-column sentiment` (neg/pos).
- Olist Brazilian E-Commerce (Kaggle `olistbr/brazilian-ecommerce`):
  `olist_order_reviews_dataset.csv`, `--text-column review_comment_message
  --label-column review_score --positive-from 4`.

Presets: `bert_base_multi` (default, multilingual BERT, 104 languages),
`hf://neuralmind/bert-base-portuguese-cased` (BERTimbau base, trained on
Brazilian Portuguese; usually the stronger choice), `distil_bert_base_multi`
(faster), or a local folder holding either. On a GPU use sequence length
128-256; on CPU 64.

Examples:

    python recipes/bert_sentiment_pt.py --data B2W-Reviews01.csv \\
        --text-column review_text --label-column recommend_to_a_friend \\
        --preset hf://neuralmind/bert-base-portuguese-cased --epochs 2 --out runs/b2w
    python recipes/bert_sentiment_pt.py --smoke --out /tmp/smoke   # offline, seconds
"""

import argparse
import os

import keras
import numpy as np

from keras_tl._utils.logs import drop_retracing_warnings
from keras_tl.recipes.text_classification import text_classifier
from keras_tl.text import DEFAULT_TEXT_PRESET
from keras_tl.text import read_text_csv

EXAMPLES = [
    "Produto excelente, chegou antes do prazo. Recomendo!",
    "Péssimo atendimento, o aparelho veio quebrado e ninguém resolveu.",
    "O filme é lindo e a atuação é maravilhosa.",
]

# A handful of sentences for --smoke, which only checks that the pipeline
# runs end to end offline; its accuracy means nothing.
SMOKE_POSITIVE = [
    "gostei muito do produto", "ótimo filme recomendo", "entrega rápida e produto bom",
    "adorei a qualidade", "excelente atendimento", "muito bom mesmo",
    "o filme é ótimo", "produto bom e barato",
]
SMOKE_NEGATIVE = [
    "não gostei do produto", "péssimo filme", "entrega atrasada e produto ruim",
    "odiei a qualidade", "atendimento horrível", "muito ruim mesmo",
    "o filme é péssimo", "produto ruim e caro",
]


def tiny_offline_model(texts, sequence_length):
    """A tiny random BERT whose vocabulary is the words of `texts`."""
    import keras_hub

    words = sorted({w for t in texts for w in t.lower().split()})
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length
    )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=sequence_length,
    )
    return backbone, preprocessor


def load_csv(args):
    texts, labels = read_text_csv(args.data, args.text_column, args.label_column)
    keep = [i for i, t in enumerate(texts) if t and t.strip() and labels[i].strip()]
    if len(keep) < len(texts):
        print(f"Dropped {len(texts) - len(keep)} rows with an empty text or label.")
    texts = [texts[i] for i in keep]
    labels = [labels[i] for i in keep]
    if args.positive_from is not None:
        labels = [int(float(label) >= args.positive_from) for label in labels]
        class_names = ["negativo", "positivo"]
    else:
        class_names = None
    if args.max_rows and len(texts) > args.max_rows:
        pick = np.random.default_rng(0).permutation(len(texts))[: args.max_rows]
        texts = [texts[i] for i in pick]
        labels = [labels[i] for i in pick]
    return texts, labels, class_names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="CSV file with a header row")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--positive-from", type=float, default=None,
                        help="numeric labels >= this become 'positivo', the rest 'negativo'")
    parser.add_argument("--preset", default=DEFAULT_TEXT_PRESET,
                        help="KerasHub preset name, local folder or hf:// handle")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-rows", type=int, default=None,
                        help="train on a random sample of this many rows")
    parser.add_argument("--out", default="runs/bert_sentiment_pt")
    parser.add_argument("--smoke", action="store_true",
                        help="offline run on a tiny sample with a tiny random BERT")
    args = parser.parse_args(argv)

    if args.smoke:
        texts = SMOKE_POSITIVE + SMOKE_NEGATIVE
        labels = [1] * len(SMOKE_POSITIVE) + [0] * len(SMOKE_NEGATIVE)
        class_names = ["negativo", "positivo"]
        preset = tiny_offline_model(texts + EXAMPLES, sequence_length=16)
        # One fine-tuning phase: each phase retraces the encoder's train step.
        settings = dict(epochs=1, batch_size=4, sequence_length=16, validation_split=0.25,
                        unfreeze={"phases": 1})
    else:
        if not args.data:
            parser.error("--data CSV is required (or --smoke for an offline check)")
        texts, labels, class_names = load_csv(args)
        preset = args.preset
        settings = dict(epochs=args.epochs, batch_size=args.batch_size,
                        sequence_length=args.sequence_length, validation_split=0.1)

    model = text_classifier(
        (texts, labels), preset=preset, class_names=class_names,
        class_weight="balanced", **settings,
    )
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "sentiment.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    probabilities = reloaded.predict(EXAMPLES, verbose=0)
    names = model.class_names
    for sentence, p in zip(EXAMPLES, probabilities):
        print(f"{names[int(p.argmax())]:>10s} {p.max():.2f}  {sentence}")
    print(f"Saved {path}")
    return path


if __name__ == "__main__":
    # TensorFlow's retracing warning (a new model per training phase) is not
    # for the reader of this script.
    drop_retracing_warnings()
    main()
