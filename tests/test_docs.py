"""The documentation site builds with warnings as errors, and its pages
render in a real headless browser (Debian's Chromium)."""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built as `make docs` builds it, into a scratch folder."""
    if shutil.which("mkdocs", path=os.path.dirname(sys.executable)) is None:
        pytest.fail("mkdocs is not installed: `make install` installs the docs extra.")
    out = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "docs/build_api_pages.py"], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    built = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "mkdocs"), "build", "--strict",
         "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    return out


def test_every_public_name_has_a_page(site):
    import keras_tl

    missing = [name for name in keras_tl.__all__ if name != "__version__"
               and not (site / "api" / name / "index.html").exists()]
    assert not missing, missing
    for guide in ("feature-extraction", "fine-tuning", "distillation", "deployment",
                  "backends", "knobs", "cli"):
        page = (site / "guides" / guide / "index.html").read_text(encoding="utf-8")
        assert "<h1" in page, guide
    index = (site / "guides" / "fine-tuning" / "index.html").read_text(encoding="utf-8")
    assert "colab.research.google.com/github/keras-tl/keras-tl/blob/main/tutorials/" in index


def _rendered_text(url):
    """The page's DOM after Chromium ran it, as text."""
    profile = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"chromium-{os.getpid()}"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--dump-dom", url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    text = re.sub(r"<script.*?</script>", " ", done.stdout, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


def test_fine_tune_page_shows_signature_parameters_and_example_in_chromium(site):
    if CHROMIUM is None:
        if os.environ.get("KERAS_TL_REQUIRE_BROWSER"):
            pytest.fail("Chromium is missing: `make browser` installs Debian's chromium.")
        pytest.skip("Chromium is not installed (`make browser` installs it).")
    import html

    text = html.unescape(_rendered_text((site / "api" / "fine_tune" / "index.html").as_uri()))
    # The signature, with the shared knobs and their defaults.
    assert re.search(r"fine_tune \( backbone , train_data , validation_data = None", text), text[:500]
    assert "learning_rate = None" in text and "batch_size = 32" in text
    # The parameters, described.
    parameters = text[text.index("Parameters"):]
    assert "train_data" in parameters and "learning_rate" in parameters
    # The example.
    assert "Example" in text and "fine_tune (" in text[text.index("Example"):]
