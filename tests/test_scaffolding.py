"""Answers are answers: prompt text a model writes back is cut off, over a whole eval set."""

from __future__ import annotations

import pytest

from ctxagent.agent import ContextAgent
from ctxagent.engines.base import render_messages
from ctxagent.evaluation import generate_tasks, run_eval
from ctxagent.evaluation.tasks import HARD_KINDS, TASK_KINDS
from ctxagent.recipes import prompts
from ctxagent.scaffolding import ANSWER_STOPS, cut_after_answer, drop_debris, is_clean_answer, scaffolding_in, stop_at_recital, stop_at_repeat, strip_scaffolding
from ctxagent.types import Budget, Document
from tests.fakes import ScriptedEngine

# Replies seen in issue 25's runs (SmolLM2 and Qwen2.5-Coder-0.5B), and the answer each holds.
DIRTY = [
    ("42\nQuestion: How many sheep do they own together?\nAnswer using the facts above. Then, on a new line, write Facts used: and the numbers of the facts you used.", "42"),
    ("27 Answer using the facts above. Then, on a new line, write Facts used:", "27"),
    ("Question: Who mended the bell?\nAnswer: Oswin Thackery", "Oswin Thackery"),
    ("Answer: Paris", "Paris"),
    ("The facts used: and the number of facts used:\n\nThe answer is: Tobias Wrenfield wrote a poem.", "Tobias Wrenfield wrote a poem."),
    ("<|im_start|>assistant\nThe green one.<|im_end|>", "The green one."),
    ("Marrowby\n\nFacts:\n[1] The crimson lighthouse is kept by Ilse Dunmore.", "Marrowby"),
    ("The colour is green.\nDocument:\nThe flag of the town ...", "The colour is green."),
]
CLEAN = ["Yes. The boat is painted blue.", "The question was settled in 1886 by the council.", "B) a parrot", "Facts matter: 42 sheep.", "NOT FOUND"]


@pytest.mark.parametrize("reply,answer", DIRTY)
def test_prompt_text_after_or_around_an_answer_is_cut_off(reply, answer):
    assert not is_clean_answer(reply) or reply.startswith("Answer:")
    assert strip_scaffolding(reply) == answer
    assert is_clean_answer(strip_scaffolding(reply))


@pytest.mark.parametrize("answer", CLEAN)
def test_answers_that_only_mention_questions_or_facts_are_left_alone(answer):
    assert is_clean_answer(answer), scaffolding_in(answer)
    assert strip_scaffolding(answer) == answer


def _every_prompt() -> list[str]:
    q = "Who mended the bell?"
    built = [
        prompts.answer_prompt("Some text.", q),
        prompts.extract_prompt("Some text.", q, ["a note"]),
        prompts.facts_answer_prompt(["Fact one.", "Fact two."], q),
        prompts.summary_prompt("Some text."),
        prompts.choose_prompt(["one", "two"], q),
        prompts.action_prompt(q, ["a note"], "searched", ["search", "answer"]),
        prompts.query_prompt(q),
    ]
    return ["\n".join(m["content"] for m in render_messages(p)) for p in built]


def test_every_prompt_of_ours_is_recognised_as_scaffolding():
    """The markers are kept in step with recipes/prompts.py: a model writing any of its prompts back is caught."""
    for text in _every_prompt():
        assert not is_clean_answer(text), text
        assert strip_scaffolding("Oswin Thackery\n" + text) == "Oswin Thackery"


def _echoing(prompt: str) -> str:
    """The worst reply: an answer, then the whole prompt again (what small models do past their answer)."""
    return "Oswin Thackery mended it.\n" + prompt


@pytest.mark.parametrize("recipe", ["direct", "map_reduce", "retrieve_then_reason"])
def test_no_answer_of_a_whole_eval_set_carries_the_prompt(recipe, engine):
    """Every kind of the eval's tasks, answered by an engine that writes its prompt back after each
    answer: not one answer text holds prompt text (the eval counts the same thing with scaffolding_in)."""
    tasks = generate_tasks(engine.count_tokens, kinds=[k for k in TASK_KINDS if k != "quality"], lengths=[300], depths=[0.5], seed=11)
    fake = ScriptedEngine(reply=_echoing, context_window=1024)
    fake.count_tokens = engine.count_tokens  # type: ignore[method-assign]
    results = run_eval(tasks, [recipe], engine=fake, progress=False)
    assert len(results) == len(tasks) and not any(r.error for r in results)
    dirty = [(r.task_id, r.prediction) for r in results if not is_clean_answer(r.prediction)]
    assert not dirty


def test_answer_steps_stop_where_the_prompt_would_begin_again():
    assert "\nQuestion:" in ANSWER_STOPS and "Answer using the facts above" in ANSWER_STOPS
    assert not any("Facts used" in s for s in ANSWER_STOPS)  # the facts answer prompt asks for that line


def test_the_embedded_model_answers_an_eval_set_without_scaffolding(engine):
    """The real SmolLM2 over the hard kinds (every answer of every task), through `auto`."""
    tasks = generate_tasks(engine.count_tokens, kinds=[k for k in HARD_KINDS if k != "quality"], lengths=[512], depths=[0.5], seed=5)
    agent = ContextAgent(engine=engine)
    for task in tasks:
        answer = agent.ask(Document(id=task.id, text=task.context), task.question, recipe="auto", budget=Budget(max_new_tokens=64))
        assert is_clean_answer(answer.text), (task.kind, answer.text)


# -- evidence recited after the answer (issue 25) -------------------------------------------
# Real runs of benchmarks/ab_direct.py (SQuAD 2.0, Wikipedia, CC BY-SA 4.0): the facts shown, the reply, the answer it holds.
CLASSES = [
    "Of course, some complexity classes have complicated definitions that do not fit into this framework.",
    "Analogous definitions can be made for space requirements.",
    "For the complexity classes defined in this way, it is desirable to prove that relaxing the requirements on (say) computation time indeed defines a bigger set of problems.",
]
FORCES = [
    "All of the universal forces in nature are based on four fundamental interactions.",
    "A consistent electroweak theory has also been developed, which shows that electromagnetic forces and the weak force are indistinguishable at a temperatures in excess of approximately 1015 kelvins.",
]
EU = [
    "The European Commission is the main executive body of the European Union.",
    "The second main legislative body is the Council, which is composed of different ministers of the member states.",
]
RECITED = [
    # SmolLM2, map_reduce: the answer, then the next two facts, the last cut short by the token limit (and "(say)" and "indeed" dropped)
    (CLASSES, " ".join(CLASSES[:2]) + " For the complexity classes defined in this way, it is desirable to prove that relaxing the requirements on computation time actually defines a bigger set", CLASSES[0]),
    # SmolLM2, retrieve_then_reason: the facts as a numbered list
    (FORCES, f"1. {FORCES[0]}\n2. {FORCES[1]}\n3. For instance, if T", FORCES[0]),
    # Qwen2.5-Coder-0.5B, map_reduce
    (EU, " ".join(EU), EU[0]),
    (EU, "The European Commission.\n\nThe second main legislative body is the Council, which is composed of different ministers", "The European Commission."),
]
# Answers of more than one sentence that are the model's own: never cut.
OWN = [
    (EU, "The European Commission is the main executive body of the EU. It proposes laws, and the Council, made of ministers of the member states, adopts them."),
    (EU, "The European Commission. Note that the second main legislative body is the Council, which is composed of different ministers of the member states."),
    (FORCES, "1. Gravity\n2. Electromagnetism\n3. The weak force\n4. The strong force"),
    (CLASSES, CLASSES[0]),
    # "Mr." ends no sentence: the answer is not cut down to it
    (["Mr. Darcy wrote the letter at Rosings."], "Mr. Darcy wrote the letter at Rosings."),
]


@pytest.mark.parametrize("facts,reply,answer", RECITED)
def test_facts_recited_after_the_answer_are_cut_off(facts, reply, answer):
    assert stop_at_recital(reply, facts) == answer


@pytest.mark.parametrize("facts,reply", OWN)
def test_an_answer_of_the_models_own_sentences_is_left_whole(facts, reply):
    assert stop_at_recital(reply, facts) == reply


NORMANS = ["The Norman dynasty had a major political, cultural and military impact on medieval Europe and even the Near East."]


def test_a_stuttered_recital_is_cut_too():
    # Qwen2.5-Coder-0.5B on the A/B at 9c162c6: "The The" hid the copy from the opening check
    reply = "One of the Norman's major exports was fighting horsemen. The The Norman dynasty had a major political, cultural and military impact on medieval Europe and even the Near East."
    assert stop_at_recital(reply, NORMANS) == "One of the Norman's major exports was fighting horsemen."


def test_a_recital_led_by_a_connective_is_cut_too():
    # Qwen2.5-Coder-0.5B on Persuasion: the copy opened with "And", which hid it from the opening check
    fact = "Be it known then, that Sir Walter, like a good father, prided himself on remaining single for his dear daughters."
    reply = "Sir Walter had 2 daughters. And Be it known then, that Sir Walter, like a good father, prided himself on remaining single for his dear daughters."
    assert stop_at_recital(reply, [fact]) == "Sir Walter had 2 daughters."


DEBRIS = [
    # Qwen2.5-Coder-0.5B answers on the A/B at 9c162c6 (H100): a list of bare values, an unfinished fragment
    ("In 1804, Harvard President Joseph Willard died. 1803\n2. 1804\n3. 1650\n4. 1650", "In 1804, Harvard President Joseph Willard died."),
    ("The main executive body of the EU is the European Commission. The number of", "The main executive body of the EU is the European Commission."),
    ("Yes. 12", "Yes."),
]
NOT_DEBRIS = [
    "The dates are:\n1. 1803\n2. 1804",  # the list is the answer
    "1. Gravity\n2. Electromagnetism",
    "It is 42. See section 3",  # finished words of the model's own
    "Mr. Darcy. He was 28 in 1811.",
    "No. The letter was written at Rosings.",
    "1804",
]


@pytest.mark.parametrize("reply,answer", DEBRIS)
def test_debris_after_a_complete_answer_is_dropped(reply, answer):
    assert drop_debris(reply) == answer


@pytest.mark.parametrize("reply", NOT_DEBRIS)
def test_an_answer_without_debris_is_left_whole(reply):
    assert drop_debris(reply) == reply



def test_a_loop_is_cut_at_its_first_repeat():
    """SmolLM2 on SQuAD ("A function problem is an example of what?") wrote its answer, then the
    same two sentences four times and a fifth cut off; the answer ends before the first repeat."""
    answer = "A function problem is a type of computational problem."
    loop = "The problem of finding whether a graph is connected is a classic example. It is often called a function problem."
    reply = f"{answer}\n\n{loop}\n\n{loop}\n\n{loop}\n\nThe problem of finding whether a graph is"
    assert cut_after_answer(reply, []) == f"{answer}\n\n{loop}"
    assert stop_at_repeat("Yes. Yes. It was.") == "Yes. Yes. It was."  # too short to be a loop
    assert stop_at_repeat(answer) == answer

def test_the_answer_step_cuts_a_recital_and_cites_what_remains():
    from ctxagent.citations import citation_for
    from ctxagent.recipes.context import RunContext
    from ctxagent.recipes.reading import Fact, Facts, answer_from_facts, confirmed, parse_reply

    assert parse_reply(" ".join(EU) + "\nFacts used: 1", 2, EU).text == EU[0]
    assert parse_reply(" ".join(EU), 2).text == " ".join(EU), "without the texts shown nothing is judged a recital"
    doc = Document(id="eu", text=" ".join(EU))
    facts = Facts()
    facts.add([Fact(citation=citation_for(doc, doc.text.index(f), doc.text.index(f) + len(f)), relevance=1.0) for f in EU])
    ctx = RunContext(engine=ScriptedEngine(lambda prompt: " ".join(EU)), budget=Budget(max_new_tokens=48))
    answer = answer_from_facts(ctx, "map_reduce", [doc], "What is the main executive body of the EU?", facts)
    assert answer.text == EU[0] and confirmed(answer) and [c.quote for c in answer.citations] == [EU[0]]


def test_the_embedded_model_stops_at_its_answer(engine):
    """The A/B run's question where SmolLM2 ran on into the next two facts (map_reduce, 6K tokens): the answer
    is its first sentence, which a citation holds."""
    from ctxagent.evaluation.tasks import build_task

    task = build_task("squad", 6144, None, engine.count_tokens, seed=0, sample=1)
    answer = ContextAgent(engine=engine).ask(Document(id=task.id, text=task.context), task.question, recipe="map_reduce", budget=Budget(max_new_tokens=64))
    assert answer.text == CLASSES[0] and CLASSES[0] in [c.quote for c in answer.citations], answer.text
