"""Every prediction gets a validity, so nothing unanswerable is scored as a silent zero.

`ok` answered; `empty` answered nothing; `truncated` ran out of its generation budget; `overflow` the server
refused the context (or it exceeds the known window); `refused` the model or a filter declined; `error` retries
ran out (the record keeps the last error). Scores count the cases the model answered (ok, empty, truncated,
refused) and show the others beside them.
"""

from __future__ import annotations

from ruler.backends.base import Completion

VALIDITIES = ("ok", "empty", "truncated", "overflow", "refused", "error")
SCORED = frozenset({"ok", "empty", "truncated", "refused"})


def classify(completion: Completion) -> str:
    if completion.failure:
        return completion.failure
    if completion.finish_reason == "length":
        return "truncated"
    if not completion.text.strip():
        return "empty"
    return "ok"
