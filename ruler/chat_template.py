"""Chat templates: which one a run uses, and rendering it the way transformers' `apply_chat_template` does (same
sandbox, filters, globals and `continue_final_message` cut), with one difference: "today" is fixed.

gpt-oss's template writes the current date into every prompt; with the real clock a prompt, its hash and its
stored recipe would change at midnight, and runs made on different days could not be paired.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ruler.errors import RulerError
from ruler.tokenizers import Tokenizer

#: the "today" every chat template sees
TEMPLATE_DATE = datetime(2026, 1, 1)
#: appended to the message being continued and cut off after rendering (transformers' own tag)
CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template (or none) and where it came from; `sha256` goes into the data's manifest."""

    source: str
    text: str | None

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(self.text.encode()).hexdigest() if self.text is not None else None


def resolve_chat_template(option: str, tokenizer: Tokenizer) -> ChatTemplate:
    """`auto`, `none` or a file path."""
    if option == "none":
        return ChatTemplate("none", None)
    if option == "auto":
        if tokenizer.chat_template:
            return ChatTemplate("tokenizer", tokenizer.chat_template)
        return ChatTemplate("none", None)
    path = Path(option)
    if not path.is_file():
        raise RulerError(f"chat template not found: {option!r} (use auto, none or a .jinja file)")
    return ChatTemplate(str(path), path.read_text(encoding="utf-8"))


class _Generation(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` (assistant-mask markers some templates carry) renders its body."""

    tags: ClassVar[set[str]] = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller) -> str:
        return caller()


def _raise(message: str):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None,
            sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@lru_cache(maxsize=16)
def _compiled(text: str) -> jinja2.Template:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=[_Generation, jinja2.ext.loopcontrols])
    environment.filters["tojson"] = _tojson
    environment.globals.update(raise_exception=_raise, strftime_now=TEMPLATE_DATE.strftime)
    return environment.from_string(text)


def render_chat(text: str, messages: list[dict[str, str]], continue_final_message: bool = False,
                add_generation_prompt: bool = False, **variables: Any) -> str:
    """The conversation as the model sees it; with `continue_final_message`, ending inside the last message."""
    messages = [dict(message) for message in messages]
    if continue_final_message:
        messages[-1]["content"] += CONTINUE_TAG
    rendered = _compiled(text).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                      **variables)
    if not continue_final_message:
        return rendered
    tag = rendered.rfind(CONTINUE_TAG.strip())
    if tag < 0:
        raise jinja2.exceptions.TemplateError("the template drops the message to continue")
    # a template that trims the message also trims the tag's trailing space: then trim the message's own too
    return rendered[:tag] if rendered[tag:tag + len(CONTINUE_TAG)] == CONTINUE_TAG else rendered[:tag].rstrip()
