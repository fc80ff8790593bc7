"""Every default number and name ctxagent uses in more than one place, declared once.

A module that needs one imports it from here instead of repeating the literal, so
changing a default is one edit (and `auto`'s cost model plans with the very settings
the recipes run with). This module imports nothing from ctxagent: every layer may use it.
"""

from __future__ import annotations

# The engine and recipe used when none is named (SDK, CLI, batch, graph, eval).
DEFAULT_ENGINE = "hf"
DEFAULT_RECIPE = "auto"

# Completion length of the final answer (Budget.max_new_tokens, SamplingParams, `--max-new-tokens`,
# the server's `max_tokens` when a request gives none).
MAX_NEW_TOKENS = 256

# The time limit of interactive questions (`ContextAgent().ask`, `ctxagent ask`) when none is given:
# long enough for a careful answer with the embedded model on a small CPU, short enough to wait for.
# Batch jobs and eval have no time limit unless asked. Lift it with Budget(max_seconds=None) or
# `ctxagent ask --max-seconds 0`.
INTERACTIVE_MAX_SECONDS = 60.0

# Tokens kept free in a prompt for the chat template's own markup around our text.
TEMPLATE_SLACK = 48

# retrieve_then_reason: the retriever, the chunks it reads and their size (auto costs the same).
RETRIEVER = "hybrid"
RETRIEVE_K = 4
RETRIEVE_CHUNK_TOKENS = 256

# Evidence selection: candidate sentences the engine re-ranks with its log-probs; the evidence
# scan (map_reduce) considers every sentence, so it lets the engine re-rank more of them.
RERANK = 12
EVIDENCE_SCAN_RERANK = 24

# Chunk size of the compressors' input when the documents are cut for them.
COMPRESS_CHUNK_TOKENS = 256

# The sentence encoder of dense retrieval, the embedding compressor and evidence selection.
SENTENCE_ENCODER = "all-MiniLM-L6-v2"
