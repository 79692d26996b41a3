"""The hybrid runtime: route -> retrieve -> select examples -> build the prompt -> generate ->
validate, one plain function per step.

A request is routed to a capability (named, or picked by similarity to the capabilities'
descriptions). The route says what serves it, from the audit's plan:

- a knowledge capability (decision ``retrieval``): its sources are searched and the answer is
  written from the numbered passages, with citations - or, with ``answer: quote``, is the
  closest clause of those passages, quoted (:mod:`ragtune.runtime.quote`);
- a behaviour capability: ``lora`` applies its adapter (when one is trained), ``few-shot`` puts
  its most similar examples in the prompt; when it declares ``context_from`` - the
  contract-review case - the knowledge of those capabilities is retrieved too, and the answer
  comes in the behaviour's format from the current text.

The output is checked against the capability's contract (or the one the request brings: an API
client's ``response_format``); on failure the model gets one repair attempt that names what was
wrong, then the result carries ``contract_violation`` rather than silently bad output. A
client's own instructions go after the capability's rules in the system prompt, and the
request's stop strings, ``top_p`` and ``seed`` reach the backend. Every result carries the
citations (document, section, version, snapshot), the route and the time of each step.

:class:`~ragtune.runtime.runtime.Runtime` holds what the steps share (project, knowledge base,
contracts, examples, the generation backend); the steps read it and change nothing in it, so one
runtime serves many requests.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ragtune.behavior.contract import (
    ContractResult,
    OutputContract,
    default_instructions,
)
from ragtune.behavior.examples import Example
from ragtune.context import PASSAGES, Passage, clip, defuse, format_context
from ragtune.generate.backend import GenerationParams, Stream
from ragtune.prompt import (
    KNOWLEDGE_SYSTEM,
    chat_messages,
    repair_messages,
    with_client_instructions,
)
from ragtune.runtime.quote import quote
from ragtune.runtime.runtime import (
    PipelineError,
    Request,
    Result,
    Route,
    Runtime,
    Strategy,
)
from ragtune.runtime.support import support

if TYPE_CHECKING:
    from ragtune.generate.backend import Generation

__all__ = [
    "KNOWLEDGE_SYSTEM",
    "PromptCheck",
    "build_prompt",
    "check_support",
    "classification",
    "classified",
    "contract_for",
    "generate",
    "guide_regex",
    "guide_schema",
    "quoted",
    "retrieve",
    "route",
    "run",
    "select_shots",
    "stream",
    "validate",
]

_CITED = re.compile(r"\[(\d{1,2})\]")


# -- the steps ---------------------------------------------------------------------------------


def route(runtime: Runtime, request: Request) -> Route:
    """Pick the capability and what serves it: the audit's decision, the adapter, the knowledge.

    Raises:
        PipelineError: The request names an unknown capability.
    """
    how: Literal["named", "routed"] = "named"
    score = None
    if request.capability is not None:
        name = request.capability
    else:
        name, score = runtime.route_by_similarity(request.question)
        how = "routed"
    cap = runtime.capability(name)
    decision = runtime.decisions.get(name, "retrieval" if cap.sources else "prompt")
    if decision == "retrieval" or cap.answers_from_sources:
        # A knowledge capability with a trained reader reads its passages with that adapter.
        reader = runtime.adapter_for(name) if cap.reader is not None else None
        if cap.answer == "quote":
            # Quoted: no model. A request with its own output contract is generated instead
            # (:func:`quoted`), by the reader where there is one.
            writer = reader if request.contract is not None else None
            return Route(name, "quote", (name,), writer, how, score)
        return Route(name, "retrieval", (name,), reader, how, score)
    knowledge = tuple(cap.context_from)
    if decision == "lora":
        adapter = runtime.adapter_for(name)
        strategy: Strategy = "lora" if adapter else "prompt"
        return Route(name, strategy, knowledge, adapter, how, score)
    if decision == "few-shot" and cap.examples:
        return Route(name, "few-shot", knowledge, None, how, score)
    return Route(name, "prompt", knowledge, None, how, score)


def retrieve(runtime: Runtime, route: Route, request: Request) -> list[Passage]:
    """The passages of the route's knowledge capabilities for the question (none when the route
    has no knowledge), in the order the route's adapter was trained with: the search's, or
    reordered by their clause closest to the question for an adapter trained with
    ``context_order: reranked`` (a reader, by default)."""
    if not route.knowledge:
        return []
    passages = runtime.search(request.question, route.knowledge, PASSAGES)
    if runtime.context_order(route) == "reranked":
        from ragtune.knowledge.offers import rerank

        passages = rerank(request.question, passages, runtime.embedder)
    return passages


def select_shots(runtime: Runtime, route: Route, request: Request) -> list[Example]:
    """The few-shot examples for a ``few-shot`` route, and for an adapter trained with shots
    (``train.shots``: as many, chosen the same way); none otherwise."""
    if route.strategy == "few-shot":
        return runtime.shots_for(route.capability, request.question)
    k = runtime.adapter_shots(route)
    return runtime.shots_for(route.capability, request.question, k=k) if k else []


def contract_for(
    runtime: Runtime, route: Route, request: Request | None = None
) -> OutputContract | None:
    """The contract the answer must honour: the request's own (a client's ``response_format``)
    when it brings one, else the capability's, else None."""
    if request is not None and request.contract is not None:
        return request.contract
    return runtime.contracts.get(route.capability)


def system_prompt(
    runtime: Runtime, route: Route, contract: OutputContract | None = None
) -> str | None:
    """The system prompt of a route.

    A knowledge capability: its ``instructions`` or :data:`KNOWLEDGE_SYSTEM`. A behaviour: the
    prompt its adapter is trained with (:func:`ragtune.behavior.contract.default_instructions`:
    its instructions or description and, with a contract, exactly what to reply with); an
    adapter trained with another ``train.system_prompt`` gets that one.

    ``contract`` is a contract the request brings in place of the capability's: a behaviour
    is told to reply with it instead; any other prompt is followed by what to reply with.
    """
    cap = runtime.capability(route.capability)
    if route.strategy in ("retrieval", "quote"):
        base = cap.instructions or KNOWLEDGE_SYSTEM
    elif route.strategy == "lora" and cap.train.get("system_prompt"):
        base = str(cap.train["system_prompt"])
    else:
        return default_instructions(
            cap.instructions or cap.description,
            contract or runtime.contracts.get(route.capability),
        )
    return base if contract is None else f"{base} Reply with only {contract.describe()}."


def build_prompt(
    runtime: Runtime,
    route: Route,
    request: Request,
    passages: Sequence[Passage],
    shots: Sequence[Example],
) -> list[dict[str, str]]:
    """Chat messages: the system prompt, the shots, the history, then the question with the
    passages marked as data and numbered for citation (the layout adapters are trained on).

    What the client sent (the history and the question) is defused like retrieved text
    (:func:`ragtune.context.defuse`): whatever the backend, it cannot open a chat turn. The
    client's instructions follow the capability's rules in the system prompt
    (:func:`ragtune.prompt.with_client_instructions`); a contract the request brings replaces
    the capability's there too."""
    context = format_context(passages, runtime.passage_chars(route)) if passages else None
    history = [{**turn, "content": defuse(turn["content"])} for turn in request.history]
    system = system_prompt(runtime, route, request.contract)
    system = with_client_instructions(system, request.instructions)
    return chat_messages(system, shots, defuse(request.question), context, history)


def quoted(
    runtime: Runtime, route: Route, request: Request, passages: Sequence[Passage]
) -> Generation | None:
    """The answer of a ``quote`` route (:func:`ragtune.runtime.quote.quote`); None for any
    other route, and for a request with its own output contract, which a quote cannot meet
    (it is generated)."""
    if route.strategy != "quote" or request.contract is not None:
        return None
    return quote(request.question, passages, runtime.embedder)


def generate(
    runtime: Runtime, route: Route, messages: list[dict[str, str]], request: Request
) -> Generation:
    """One generation with the route's adapter (or the base model), guided by the contract's
    JSON Schema or regex when the runtime is ``guided``."""
    return runtime.backend.generate(messages, generation_params(runtime, route, request))


def generation_params(runtime: Runtime, route: Route, request: Request) -> GenerationParams:
    """The route's adapter, the request's budget and sampling settings (temperature, top_p,
    seed, stop strings), and the schema or regex that guides the decoding
    (:func:`guide_schema`, :func:`guide_regex`)."""
    return GenerationParams(
        adapter=route.adapter,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        stop=request.stop,
        schema=guide_schema(runtime, route, request),
        regex=guide_regex(runtime, route, request),
        top_p=request.top_p,
        seed=request.seed,
    )


def guide_schema(
    runtime: Runtime, route: Route, request: Request | None = None
) -> dict[str, Any] | None:
    """The JSON Schema that guides the decoding (:func:`contract_for`: the request's contract or
    the route's), or None (no JSON Schema contract, or the runtime is not ``guided``)."""
    contract = contract_for(runtime, route, request)
    schema = getattr(contract, "schema", None)
    if not runtime.guided or not isinstance(schema, dict):
        return None
    if request is None or request.contract is not None:
        return schema
    return classified(runtime, route, request.question, schema)


def classified(
    runtime: Runtime, route: Route, question: str, schema: dict[str, Any]
) -> dict[str, Any]:
    """The capability's schema with the ``enum`` of its ``classify:`` field cut to the label its
    classifier picks for the question (:func:`classification`), so the decoding writes that
    label and the model the rest; the schema as it is without a classifier."""
    chosen = classification(runtime, route, question, schema)
    if chosen is None:
        return schema
    name, label = chosen
    properties = schema["properties"]
    return {**schema, "properties": {**properties, name: {**properties[name], "enum": [label]}}}


def classification(
    runtime: Runtime, route: Route, question: str, schema: dict[str, Any] | None = None
) -> tuple[str, str] | None:
    """``(field, label)`` the route's label classifier (:mod:`ragtune.behavior.classify`) picks
    for the question, or None: no classifier, or ``schema`` (default: the capability's) has no
    such property to guide."""
    classifier = runtime.classifier_for(route.capability)
    if classifier is None:
        return None
    if schema is None:
        schema = getattr(runtime.contracts.get(route.capability), "schema", None)
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict) or not isinstance(properties.get(classifier.field), dict):
        return None
    return classifier.field, classifier.choose(question)


def guide_regex(runtime: Runtime, route: Route, request: Request | None = None) -> str | None:
    """The regex contract that guides the decoding, or None: no regex contract, the runtime
    is not ``guided``, or the pattern uses what a grammar cannot express (lookarounds,
    backreferences...; the answer is then only validated)."""
    contract = contract_for(runtime, route, request)
    pattern = getattr(contract, "pattern", None)
    if not runtime.guided or not isinstance(pattern, re.Pattern):
        return None
    return pattern.pattern if guidable_regex(pattern.pattern) else None


@functools.cache
def guidable_regex(pattern: str) -> bool:
    """Whether a regex contract can become a grammar (:func:`regex_to_gbnf`)."""
    from ragtune.generate.regex_grammar import RegexGrammarError, regex_to_gbnf

    try:
        regex_to_gbnf(pattern)
    except RegexGrammarError:
        return False
    return True


def validate(
    runtime: Runtime,
    route: Route,
    messages: list[dict[str, str]],
    first: Generation,
    request: Request,
) -> tuple[Generation, ContractResult | None, list[Generation]]:
    """Check the answer against the contract; on failure, one repair attempt.

    Returns:
        The generation kept, its contract result (None without a contract) and every
        generation made (for the usage).
    """
    contract = contract_for(runtime, route, request)
    if contract is None:
        return first, None, [first]
    checked = contract.validate(first.text)
    if checked.ok:
        return first, checked, [first]
    repair = repair_messages(messages, first.text, checked.errors, contract.describe())
    second = generate(runtime, route, repair, request)
    again = contract.validate(second.text)
    if again.ok:
        return second, again, [first, second]
    return first, checked, [first, second]


def cited(text: str, count: int) -> list[int]:
    """Passage numbers an answer cites as ``[n]``, in order, within 1..count."""
    found = [int(m) for m in _CITED.findall(text)]
    return sorted({n for n in found if 1 <= n <= count})


PromptCheck = Callable[[Result], None]
"""Called with the result once its prompt is built (route, passages, messages), before any
generation; it raises to refuse the request (the server checks the prompt's size so)."""


def _prepare(
    runtime: Runtime, request: Request, check: PromptCheck | None = None
) -> tuple[Result, dict[str, float]]:
    if not request.question.strip():
        raise PipelineError("the request is empty: ask a question.")
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = now - clock
        clock = now

    chosen = route(runtime, request)
    lap("route")
    passages = retrieve(runtime, chosen, request)
    lap("retrieve")
    shots = select_shots(runtime, chosen, request)
    lap("select")
    messages = build_prompt(runtime, chosen, request, passages, shots)
    lap("prompt")
    result = Result("", chosen, passages=list(passages), shots=shots, messages=messages)
    if runtime.guided and request.contract is None and chosen.strategy != "quote":
        picked = classification(runtime, chosen, request.question)
        result.classified = dict([picked]) if picked else {}
    if check is not None:
        check(result)
    return result, timings


def run(runtime: Runtime, request: Request, check: PromptCheck | None = None) -> Result:
    """Serve one request through every step; the result carries the time of each.

    ``check`` (optional) sees the built prompt before any generation, and may refuse it.
    """
    started = time.perf_counter()
    result, timings = _prepare(runtime, request, check)
    clock = time.perf_counter()
    first = quoted(runtime, result.route, request, result.passages) or generate(
        runtime, result.route, result.messages, request
    )
    timings["generate"] = time.perf_counter() - clock
    clock = time.perf_counter()
    kept, checked, made = validate(runtime, result.route, result.messages, first, request)
    timings["validate"] = time.perf_counter() - clock
    timings["total"] = time.perf_counter() - started
    _finish(result, kept, checked, made, timings)
    check_support(runtime, result, request)
    return result


def stream(
    runtime: Runtime, request: Request, check: PromptCheck | None = None
) -> tuple[Result, Stream, Iterator[Result]]:
    """Serve a request as a stream of text pieces (``check`` as for :func:`run`).

    Returns:
        The result so far (route, passages, prompt), the :class:`Stream` of pieces, and a
        one-item iterator to call after the stream is exhausted: it validates the whole answer
        (a streamed answer cannot be taken back, so there is no repair: a violation is
        flagged) and yields the finished result.
    """
    started = time.perf_counter()
    result, timings = _prepare(runtime, request, check)
    clock = time.perf_counter()
    quote = quoted(runtime, result.route, request, result.passages)
    if quote is not None:
        pieces = Stream(_given(quote))
    else:
        pieces = runtime.backend.stream(
            result.messages, generation_params(runtime, result.route, request)
        )

    def finish() -> Iterator[Result]:
        generation = pieces.collect()
        timings["generate"] = time.perf_counter() - clock
        contract = contract_for(runtime, result.route, request)
        check_started = time.perf_counter()
        checked = contract.validate(generation.text) if contract is not None else None
        timings["validate"] = time.perf_counter() - check_started
        timings["total"] = time.perf_counter() - started
        _finish(result, generation, checked, [generation], timings)
        check_support(runtime, result, request, replace=False)
        yield result

    return result, pieces, finish()


def check_support(
    runtime: Runtime, result: Result, request: Request, *, replace: bool = True
) -> None:
    """Check a reader's finished answer against its passages as its prompt showed them (each
    clipped to the characters the reader was trained with; :mod:`ragtune.runtime.support`)
    and, with ``replace``, serve the quote of the closest clause in place of an unsupported
    one (what the reader wrote is kept in ``result.unsupported``). Any other answer - the base
    model's, a behaviour's, one that must honour a contract (JSON) - is left as it is, and so is
    every answer of a runtime made with ``support=False``."""
    chosen = result.route
    if (
        not runtime.support
        or chosen.strategy != "retrieval"
        or chosen.adapter is None
        or not result.passages
        or contract_for(runtime, chosen, request) is not None
    ):
        return
    chars = runtime.passage_chars(chosen)  # what the reader was shown of each passage
    shown = [dataclasses.replace(p, text=clip(p.text.strip(), chars)) for p in result.passages]
    result.supported = support(result.text, shown).supported
    if result.supported or not replace:
        return
    instead = quote(request.question, result.passages, runtime.embedder)
    result.unsupported = result.text
    result.text = instead.text
    result.model = instead.model
    result.finish_reason = instead.finish_reason
    result.cited = cited(instead.text, len(result.passages))


def _given(generation: Generation) -> Generator[str, None, Generation]:
    """A finished generation as a stream's pieces: its whole text at once."""
    yield generation.text
    return generation


def _finish(
    result: Result,
    kept: Generation,
    checked: ContractResult | None,
    made: Sequence[Generation],
    timings: dict[str, float],
) -> None:
    result.text = kept.text
    result.model = kept.model
    result.finish_reason = kept.finish_reason
    result.prompt_tokens = sum(g.prompt_tokens for g in made)
    result.completion_tokens = sum(g.completion_tokens for g in made)
    result.repaired = len(made) > 1 and kept is made[-1]
    if checked is not None:
        result.contract_ok = checked.ok
        result.contract_violation = not checked.ok
        result.contract_errors = list(checked.errors)
    result.cited = cited(kept.text, len(result.passages))
    result.timings = timings
    if result.classified:
        # Only what the answer carries: a backend that cannot guide (a remote server) may have
        # written another label than the classifier chose.
        try:
            answer = json.loads(kept.text)
        except ValueError:
            answer = None
        carried = answer if isinstance(answer, dict) else {}
        result.classified = {k: v for k, v in result.classified.items() if carried.get(k) == v}
