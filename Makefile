# Two entry points for a fresh machine: `make run` (install + start the app) and `make test` (install + ruff + all
# tests).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test setup browser photos bench clean docs python-version lesson-assets

# The pinned wheels (torch 2.14.1 / torchvision 0.29.1 …) exist for Python 3.11: say so plainly instead of failing
# deep inside pip.
PYTHON_VERSION := 3.11
python-version:
	@p=$(PY); [ -x $$p ] || p=$(PYTHON); \
	v=$$($$p -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	if [ "$$v" != "$(PYTHON_VERSION)" ]; then \
	  echo "error: this project needs Python $(PYTHON_VERSION); '$$p' is $${v:-missing}." >&2; \
	  echo "       Install python$(PYTHON_VERSION) (e.g. apt-get install python$(PYTHON_VERSION)-venv) and run 'make PYTHON=python$(PYTHON_VERSION) ...'." >&2; \
	  exit 1; fi

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml | python-version
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	# this project itself (attack, lab, ui; the `lavan` command), editable, on top of the pinned requirements above
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	# 100 ImageNet-class sample photos (the package itself is never imported; --no-deps avoids TensorFlow)
	$(PY) -m pip install -q --no-deps ai-benchmark==0.1.2
	touch $@

setup: $(VENV)/.installed

browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# ~240 public-domain photos from Debian's gcompris-qt-data (44 MB), extracted into .lavan-photos/ for the sample set
# and the universal experiment's 100/100 split. Optional: everything works with the 100 ai-benchmark photos alone.
# The Lesson page's patches (assets/lesson/, assets/universal_lite0_baseball_image.safetensors) with the CLI: the
# single-image patch at the library's default size (~1 min on a CPU); LESSON_ARGS=--universal also retrains the
# universal patch (~5 min). See assets/README.md.
lesson-assets: setup
	$(PY) scripts/lesson_assets.py $(LESSON_ARGS)

photos: setup
	@test -d /usr/share/gcompris-qt/rcc || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcompris-qt-data >/dev/null; } || echo "note: could not install gcompris-qt-data; going on with the ai-benchmark photos"
	$(PY) -m attack photos

run: setup photos
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: setup browser photos
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# Rewrite the generated blocks of README.md, docs/BENCHMARKS.md and reports/*.md from the committed data
# (idempotent; tests/test_docs.py fails while a document is stale).
docs: setup
	$(PY) -m lab docs

clean:
	rm -rf $(VENV) .lavan-cache .lavan-photos test-artifacts .pytest_cache *.egg-info
