"""The one layout of every prompt: served, few-shot, trained and repaired."""

from __future__ import annotations

from ragtune.behavior.examples import Example
from ragtune.prompt import chat_messages, format_user, repair_messages, training_messages


def test_system_shots_history_then_the_request_with_its_context() -> None:
    shots = [Example("clause one", "FLAG low"), Example("clause two", "FLAG high", "Policy 7.")]
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    messages = chat_messages("Flag it.", shots, "clause three", "Policy 12.", history)
    assert [m["role"] for m in messages] == [
        "system", "user", "assistant", "user", "assistant", "user", "assistant", "user",
    ]  # fmt: skip
    assert messages[3]["content"] == format_user("clause two", "Policy 7.")
    assert messages[5:7] == history and messages[5] is not history[0]  # copied, not shared
    assert messages[-1]["content"] == format_user("clause three", "Policy 12.")


def test_an_example_trains_on_exactly_the_layout_it_is_served_with() -> None:
    example = Example("clause", "FLAG low", "Policy 12.")
    trained = training_messages(example, "Flag it.")
    served = chat_messages("Flag it.", [], example.input, example.context)
    assert trained[:-1] == served
    assert trained[-1] == {"role": "assistant", "content": "FLAG low"}
    assert training_messages(Example("x", "y"))[0] == {"role": "user", "content": "x"}


def test_the_repair_turn_names_what_was_wrong_and_what_to_reply() -> None:
    first = [{"role": "user", "content": "clause"}]
    repaired = repair_messages(first, "not json", ["a", "b", "c", "d"], "one JSON object")
    assert repaired[:2] == [*first, {"role": "assistant", "content": "not json"}]
    assert repaired[2]["content"] == (
        "That answer does not follow the required format (a; b; c). "
        "Reply again with only one JSON object."
    )
