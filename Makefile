# tcmcodec: two commands on a fresh clone.
#   make test  - create .venv, install with dev extras, run the test suite
#   make demo  - create .venv, install, compress a real photo with the bundled model
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch is pinned to the release that this project is developed and tested with.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
IMG ?=
DEMO_OUT ?= demo-out

.PHONY: test demo install dev clean bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-eval: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[eval]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

demo: $(VENV)/.installed-eval
	$(PY) -m tcmcodec demo $(if $(IMG),--image $(IMG)) --out $(DEMO_OUT)

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/codec_speed.py
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
