"""Real English sentiment sentences that ship in a package source archive.

The `vaderSentiment==3.3.2` source distribution carries
`additional_resources/hutto_ICWSM_2014.tar.gz`: the ground-truth files of
Hutto & Gilbert (ICWSM 2014), sentences rated for sentiment by about twenty
people each on a -4 .. +4 scale. Fetch it with

    pip download --no-binary :all: --no-deps vaderSentiment==3.3.2 -d data_cache

(4 MB; no model or data download beyond the registry).
"""

import io
import os
import tarfile

import numpy as np

__all__ = [
    "DEFAULT_VADER_SDIST",
    "SENTIMENT_CLASS_NAMES",
    "SNIPPET_SOURCES",
    "load_sentiment_snippets",
]

DEFAULT_VADER_SDIST = os.path.join("data_cache", "vaderSentiment-3.3.2.tar.gz")


def _find_default_sdist():
    """`$KERAS_TL_DATA/...`, then the checkout's `data_cache/` (where `make`
    puts it), then `data_cache/` under the working directory."""
    name = os.path.basename(DEFAULT_VADER_SDIST)
    candidates = []
    if os.environ.get("KERAS_TL_DATA"):
        candidates.append(os.path.join(os.environ["KERAS_TL_DATA"], name))
    # keras_tl/examples/text_datasets.py -> the checkout holding keras_tl/.
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates.append(os.path.join(checkout, DEFAULT_VADER_SDIST))
    candidates.append(DEFAULT_VADER_SDIST)
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return DEFAULT_VADER_SDIST

_INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
SNIPPET_SOURCES = {
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
}
SENTIMENT_CLASS_NAMES = ["negative", "positive"]


def _read_ground_truth(path, file_name):
    """Bytes of one ground-truth file from the sdist, the inner archive or a folder."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            if file_name in files:
                with open(os.path.join(root, file_name), "rb") as file:
                    return file.read()
            if os.path.basename(_INNER_ARCHIVE) in files:
                return _read_ground_truth(
                    os.path.join(root, os.path.basename(_INNER_ARCHIVE)), file_name
                )
        raise FileNotFoundError(f"{file_name} is not under folder {path!r}.")
    with tarfile.open(path, "r:gz") as archive:
        names = archive.getnames()
        inner = [n for n in names if n.endswith(_INNER_ARCHIVE)]
        if inner:
            data = archive.extractfile(inner[0]).read()
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as nested:
                return _member(nested, file_name, path)
        return _member(archive, file_name, path)


def _member(archive, file_name, path):
    matches = [n for n in archive.getnames() if n.endswith("/" + file_name) or n == file_name]
    if not matches:
        raise FileNotFoundError(f"{file_name} is not in archive {path!r}.")
    return archive.extractfile(matches[0]).read()


def load_sentiment_snippets(path=None, source="movie", min_abs_rating=0.5):
    """Loads human-rated sentiment sentences as binary labelled texts.

    Each sentence's rating is the mean of about twenty human ratings in
    [-4, 4]. Sentences rated near zero (|rating| < `min_abs_rating`) are
    dropped; the sign of the rest is the label (0 negative, 1 positive).

    Args:
        path: the `vaderSentiment-3.3.2.tar.gz` source distribution, its inner
            `hutto_ICWSM_2014.tar.gz`, or a folder holding either or the
            extracted files. Default: `$KERAS_TL_DATA`, then the
            `data_cache/` folder that `make install` fills.
        source: `"movie"` (10,605 movie-review snippets), `"amazon"`,
            `"nyt"` (editorials) or `"tweets"`.
        min_abs_rating: drop sentences whose mean rating is closer to zero.

    Returns:
        `(texts, labels, ratings)`: a numpy array of `str`, int32 labels and
        float32 mean ratings, in file order.

    Raises:
        FileNotFoundError: the archive is missing (the message says how to
            fetch it).
        ValueError: an unknown `source`.

    Example:

    ```python
    texts, labels, _ = load_sentiment_snippets("data_cache/vaderSentiment-3.3.2.tar.gz")
    len(texts), labels.mean().round(2)  # -> (10072, 0.5)
    ```
    """
    if path is None:
        path = _find_default_sdist()
    if source not in SNIPPET_SOURCES:
        raise ValueError(
            f"Unknown source {source!r}; choose one of {sorted(SNIPPET_SOURCES)}."
        )
    if not os.path.exists(os.fspath(path)):
        raise FileNotFoundError(
            f"Sentiment data {os.fspath(path)!r} not found. Fetch it with `pip "
            "download --no-binary :all: --no-deps vaderSentiment==3.3.2 -d "
            "data_cache` and pass path='data_cache/vaderSentiment-3.3.2.tar.gz'."
        )
    raw = _read_ground_truth(path, SNIPPET_SOURCES[source]).decode("utf-8", "replace")
    texts, ratings = [], []
    for line in raw.splitlines():
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) < 3:
            continue
        try:
            rating = float(parts[1])
        except ValueError:
            continue
        text = "\t".join(parts[2:]).strip()
        if text and abs(rating) >= min_abs_rating:
            texts.append(text)
            ratings.append(rating)
    ratings = np.asarray(ratings, np.float32)
    return np.asarray(texts, dtype=str), (ratings > 0).astype(np.int32), ratings
