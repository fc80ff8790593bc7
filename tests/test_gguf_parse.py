"""The embedded model's conversion parses its GGUF header once, not once per reader."""

from __future__ import annotations

import pytest

from ctxagent.engines.gguf_parse import one_parse_per_file

gguf = pytest.importorskip("gguf")


def _tiny_gguf(path) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.name", "tiny")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_readers_of_one_file_are_one_parse_inside_and_new_ones_outside(tmp_path):
    path = tmp_path / "tiny.gguf"
    _tiny_gguf(path)
    original = gguf.GGUFReader
    with one_parse_per_file():
        first, again = gguf.GGUFReader(path), gguf.GGUFReader(str(path))
        assert first is again
        assert first.fields["general.name"].contents() == "tiny"
    assert gguf.GGUFReader is original  # restored
    assert gguf.GGUFReader(path) is not first
