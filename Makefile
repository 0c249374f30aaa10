# Set-up and the two entry points. Both create .venv when missing and install torch first,
# pinned to the CPU build, so that nothing later can upgrade it.
PYTHON ?= python3.11
VENV   := .venv
PIP    := $(VENV)/bin/pip
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0
# Extras that `make test` installs so that their tests run instead of skipping.
TEST_EXTRAS := test,tensorboard,mpe,ray,highway,mamujoco,smax,og-marl

.PHONY: demo test venv clean bench-data

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: $(VENV)/bin/python
	$(PIP) install --quiet $(TORCH)
	touch $@

$(VENV)/.demo: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e . $(TORCH)
	touch $@

$(VENV)/.test: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e ".[$(TEST_EXTRAS)]" $(TORCH)
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(VENV)/bin/offmarl bench run quick

test: $(VENV)/.test
	$(VENV)/bin/ruff check
	$(PY) -m pytest -q

bench-data: $(VENV)/.test
	$(PY) benchmarks/data_layer_io.py
	$(PY) benchmarks/data_layer_sampling.py

clean:
	rm -rf $(VENV) build *.egg-info
