"""The streaming SDK (`stream`, `astream`, `aask`) with the real embedded model, and the rule that
streamed drafts never become the answer's content unless the answer check keeps them.

The draft-rejection and timeout cases use the scripted engine (tests/fakes.py): a model reply
that the check rejects, or a model that takes too long, cannot be provoked on demand from the
real model. They test control flow only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Sequence

import httpx

from ctxagent import ContextAgent
from ctxagent.engines.base import Completion, Prompt, SamplingParams, TextSink
from ctxagent.types import AnswerEvent, Document, PlanEvent, StepEvent, TokenEvent
from tests.fakes import ScriptedEngine

REPORT = Path(__file__).resolve().parent.parent / "examples" / "data" / "report.md"
QUESTION = "What was the third-quarter revenue?"


def test_stream_yields_plan_steps_draft_tokens_then_the_answer(engine):
    events = list(ContextAgent(engine=engine).stream(REPORT, QUESTION, recipe="direct"))
    assert isinstance(events[0], PlanEvent) and events[0].recipe == "direct"
    assert isinstance(events[-1], AnswerEvent) and sum(isinstance(e, AnswerEvent) for e in events) == 1
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert len(tokens) > 3 and all(t.draft for t in tokens)  # the hf engine streams token by token
    assert any(isinstance(e, StepEvent) and e.name == "answer" for e in events)
    answer = events[-1].answer
    assert "26.4" in answer.text and answer.citations and "26.4 million euros" in answer.citations[0].quote
    assert "".join(t.text for t in tokens).strip() == answer.text  # the check kept the draft


def test_hf_streams_every_row_of_a_batch_and_stops_where_the_completion_does(engine):
    prompts = ["Count from one to ten in words, separated by commas.", "List three fruits, separated by commas."]
    params = SamplingParams(max_new_tokens=24, stop=[","])
    pieces: list[list[str]] = [[], []]
    streamed = engine.generate(prompts, params, stream_to=[pieces[0].append, pieces[1].append])
    whole = engine.generate(prompts, params)
    assert [c.text for c in streamed] == [c.text for c in whole]
    for row, completion in zip(pieces, streamed):
        assert "".join(row).strip() == completion.text and "," not in "".join(row)


def test_astream_and_aask_give_the_same_answer_as_ask(engine):
    agent = ContextAgent(engine=engine)

    async def both():
        events = [e async for e in agent.astream(REPORT, QUESTION, recipe="direct")]
        return events, await agent.aask(REPORT, QUESTION, recipe="direct")

    events, answer = asyncio.run(both())
    assert isinstance(events[-1], AnswerEvent) and events[-1].answer.text == answer.text
    assert any(isinstance(e, TokenEvent) for e in events) and "26.4" in answer.text


class StreamingScripted(ScriptedEngine):
    """The scripted engine, streaming its replies word by word into sinks."""

    streams = True

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None, *, stream_to: Sequence[TextSink | None] | None = None) -> list[Completion]:
        completions = super().generate(prompts, params)
        for completion, sink in zip(completions, stream_to or []):
            for word in completion.text.split(" "):
                if sink is not None:
                    sink(word + " ")
        return completions


FACT = "The vault code is 4817."
DOC = Document(id="vault", text=f"The vault is in the cellar. {FACT} Nobody else knows it.")


def _vault_reply(prompt: str) -> str:
    # The extraction step copies the fact; the answer step invents a different number.
    return FACT if "Text:" in prompt else "The vault code is 9999."


def test_a_rejected_draft_is_streamed_as_draft_and_never_as_the_answer():
    events = list(ContextAgent(engine=StreamingScripted(_vault_reply)).stream(DOC, "What is the vault code?", recipe="map_reduce"))
    drafts = "".join(e.text for e in events if isinstance(e, TokenEvent))
    answer = events[-1].answer
    assert "9999" in drafts and all(e.draft for e in events if isinstance(e, TokenEvent))
    assert "9999" not in answer.text and "4817" in answer.text


def test_the_server_content_carries_only_the_checked_answer():
    from ctxagent.server import ServerSettings, running_server

    with running_server(StreamingScripted(_vault_reply), ServerSettings()) as server:
        body = {"model": "ctxagent/map_reduce", "stream": True, "messages": [{"role": "system", "content": DOC.text}, {"role": "user", "content": "What is the vault code?"}]}
        with httpx.stream("POST", server.base_url + "/chat/completions", json=body, timeout=60) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    import json

    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert lines[-1] == "data: [DONE]"
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    drafts = "".join(c["ctxagent"]["event"]["text"] for c in chunks if c.get("ctxagent", {}).get("event", {}).get("type") == "token")
    assert "9999" in drafts and "9999" not in content and "4817" in content


def test_a_request_over_the_timeout_gets_504():
    from ctxagent.server import ServerSettings, running_server

    class Slow(ScriptedEngine):
        def generate(self, prompts, params=None):
            time.sleep(2.0)
            return super().generate(prompts, params)

    with running_server(Slow(), ServerSettings(request_timeout=0.5)) as server:
        body = {"model": server.state.model_name, "messages": [{"role": "user", "content": "Hello?"}]}
        response = httpx.post(server.base_url + "/chat/completions", json=body, timeout=30)
    assert response.status_code == 504 and "request timeout of 0.5 s" in response.json()["error"]["message"]
