# tcmcodec: two commands on a fresh clone.
#   make test  - create .venv, install with dev extras, run the test suite; then the
#                CompressAI compatibility tests in .venv-compressai (see test-compressai)
#   make demo  - create .venv, install, compress a real photo with the bundled model
#   make serve - create .venv, install the serve extra, start the comparison page (tcm serve)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch is pinned to the release that this project is developed and tested with.
TORCH_SPEC ?= torch==2.14.1
# CompressAI needs torchvision: the release built for TORCH_SPEC
TORCHVISION_SPEC ?= torchvision==0.29.1
COMPAT_VENV ?= .venv-compressai
COMPAT_TESTS := tests/test_compressai_compat.py
IMG ?=
DEMO_OUT ?= demo-out

.PHONY: test test-compressai demo serve install dev clean bench

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

# The base install has neither CompressAI nor its numpy<2 pin, so the suite runs on numpy 2.
# The compatibility tests run in a second venv layered on this one (torch is not installed
# twice): its own site-packages (CompressAI, numpy<2, torchvision) come first on sys.path.
$(COMPAT_VENV)/.installed: $(VENV)/.installed-dev pyproject.toml
	$(PYTHON) -m venv $(COMPAT_VENV)
	echo "import site; site.addsitedir('$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')')" \
		> "$$($(COMPAT_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_tcmcodec_base.pth"
	$(COMPAT_VENV)/bin/pip install -q $(TORCHVISION_SPEC) -e '.[compressai]'
	touch $@

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q --ignore=$(COMPAT_TESTS)
	$(MAKE) test-compressai

test-compressai: $(COMPAT_VENV)/.installed
	$(COMPAT_VENV)/bin/python -m pytest -q $(COMPAT_TESTS)

demo: $(VENV)/.installed-eval
	$(PY) -m tcmcodec demo $(if $(IMG),--image $(IMG)) --out $(DEMO_OUT)

$(VENV)/.installed-serve: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[serve]'
	touch $@

serve: $(VENV)/.installed-serve
	$(PY) -m tcmcodec serve

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/codec_speed.py
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) $(COMPAT_VENV) build dist src/*.egg-info .pytest_cache
