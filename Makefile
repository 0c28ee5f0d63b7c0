# lt4rec-tfx: one command to set up and run, one command to test.
#   make run    build .venv (Python 3.10 + requirements/lock.txt) if needed, run the pipeline on
#               default synthetic data under runs/default (ROOT=dir elsewhere; RUN_ARGS="--data
#               dir --config file ..." passes `lt4rec run` options)
#   make test   build .venv if needed, run the test suite (what CI runs)
#   make test-fast  every test that runs no whole pipeline and takes seconds (not marked e2e,
#               long or slow)
#   make image  build the Kubeflow image (kubeflow/Dockerfile) tagged $(IMAGE):<commit>
#               (<commit>-dirty with uncommitted changes); needs a docker daemon
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ROOT ?= runs/default
RUN_ARGS ?=
# Python 3.10: pyenv's 3.10.13 on these machines, else any python3.10 on PATH.
PYTHON310 ?= $(shell (command -v pyenv >/dev/null && pyenv prefix 3.10.13 2>/dev/null | sed 's|$$|/bin/python|') || command -v python3.10)
PYTEST_ARGS ?=
IMAGE ?= lt4rec-tfx
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD)$(shell git status --porcelain | grep -q . && echo -dirty)
# Two pytest-xdist workers (the machines have 2 cores; most e2e time is single-threaded Python).
TEST_WORKERS ?= 2

.PHONY: setup run test test-fast test-slow lock clean image

setup: $(STAMP)

$(STAMP): requirements/lock.txt setup.py
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found: install it (pyenv install 3.10.13) or set PYTHON310=/path/to/python3.10"; exit 1; }
	test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install -q -c requirements/lock.txt pip setuptools wheel
	$(PY) -m pip install -c requirements/lock.txt -e '.[test]'
	$(PY) -m pip check
	touch $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/lt4rec run --root $(ROOT) $(RUN_ARGS)

test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not e2e and not long and not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m slow $(PYTEST_ARGS)

# Re-resolve the full lock from requirements/requirements.in (needs uv; ~1 minute).
lock:
	uv pip compile --python $(PYTHON310) --python-platform x86_64-manylinux_2_28 \
		requirements/requirements.in -o requirements/lock.txt

image:
	docker build -f kubeflow/Dockerfile -t $(IMAGE):$(IMAGE_TAG) .
	@echo "built $(IMAGE):$(IMAGE_TAG): push it and set kubeflow.image to it"

clean:
	rm -rf $(VENV) runs
