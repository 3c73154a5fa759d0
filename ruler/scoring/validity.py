"""Every prediction gets a validity, so nothing unanswerable is scored as a silent zero (MEANINGS says what each
is). Scores count the cases the model answered (ok, empty, truncated, refused) and show the others beside them.
"""

from __future__ import annotations

from ruler.backends.base import Completion
from ruler.reasoning import split_reasoning

MEANINGS = {
    "ok": "answered",
    "empty": "answered nothing",
    "truncated": "ran out of its generation budget (thinking included)",
    "overflow": "the server refused the context, or it exceeds the known window",
    "cut": "the server answered but had silently dropped part of the prompt (see truncation.py)",
    "refused": "the model or a filter declined",
    "error": "retries ran out (the record keeps the last error)",
}
VALIDITIES = tuple(MEANINGS)
SCORED = frozenset({"ok", "empty", "truncated", "refused"})


def classify(completion: Completion) -> tuple[str, str | None]:
    """The validity and, where the validity needs one, why (the completion's error, or where the budget ran
    out). Thinking does not count as an answer: a text that ends inside its reasoning is `truncated`."""
    if completion.failure:
        return completion.failure, completion.error
    split = split_reasoning(completion.text)
    thinking = bool(completion.reasoning or split.reasoning)
    if split.unfinished or (completion.finish_reason == "length" and thinking and not split.answer):
        return "truncated", "the budget ran out inside the reasoning, before an answer"
    if completion.finish_reason == "length":
        return "truncated", None
    if not split.answer.strip():
        return "empty", None
    return "ok", None
