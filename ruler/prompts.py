"""From task fields to the exact text a model receives: the task's jinja template, then the chat template.

`--chat-template auto` uses the tokenizer's own template when it has one, `none` sends the bare task text (base
models; the tokenizer then adds its BOS), and a `.jinja` file overrides both. With a template, the answer prefix
opens the assistant turn (`continue_final_message`), RULER's prefill protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ruler.chat_template import ChatTemplate, render_chat
from ruler.errors import RulerError
from ruler.tokenizers import Tokenizer

#: stands in for the haystack while templates render, so a prompt is rendered once and sized by parts
SENTINEL = "\ue000ruler:context\ue001"

MODES = ("prefill", "chat")


@dataclass(frozen=True)
class Frame:
    """A rendered prompt around its haystack: `head + context + tail`; `overhead` is their token count.

    `message_head + context + message_tail` is the user message alone, what chat mode sends to a server that
    applies the template itself."""

    head: str
    tail: str
    overhead: int
    answer_prefix: str
    #: special tokens the tokenizer adds on its own (BOS without a chat template), part of `overhead`
    added_tokens: int = 0
    message_head: str = ""
    message_tail: str = ""


class PromptRenderer:
    """Renders task templates (configs/templates and any user folder) and wraps them in the chat template.

    `prefill` mode opens the assistant turn with the answer prefix (RULER's protocol; no template: the bare text
    followed by the prefix, for base models). `chat` mode appends the prefix to the user message and lets the model
    open its own turn, as chat APIs and reasoning models need."""

    def __init__(self, template_dirs: list[Path], chat: ChatTemplate, tokenizer: Tokenizer,
                 mode: str = "prefill") -> None:
        if mode not in MODES:
            raise RulerError(f"unknown mode {mode!r}: use {' or '.join(MODES)}")
        if mode == "chat" and chat.text is None:
            raise RulerError("chat mode sizes prompts with the model's chat template; the tokenizer has none, "
                             "so pass --chat-template FILE")
        # task files are shared like data: their templates may read fields, never reach Python
        self._env = ImmutableSandboxedEnvironment(loader=jinja2.FileSystemLoader([str(d) for d in template_dirs]),
                                                  undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
        self.chat, self.mode = chat, mode
        self._tokenizer = tokenizer

    def frame(self, template: str, answer_prefix: str, fields: dict[str, Any]) -> Frame:
        try:
            user = self._env.get_template(template).render(context=SENTINEL, **fields)
            prefix = self._env.from_string(answer_prefix).render(**fields)
        except jinja2.TemplateNotFound as error:
            raise RulerError(f"task template not found: {error.name!r}") from None
        except jinja2.TemplateError as error:
            raise RulerError(f"task template {template!r} failed: {error}") from None
        message = user + prefix if self.mode == "chat" else user
        head, tail = self._split(self.wrap(message, "" if self.mode == "chat" else prefix))
        message_head, message_tail = self._split(message)
        added = self._tokenizer.added_tokens if self.chat.text is None else 0
        return Frame(head, tail, sum(self._tokenizer.count_batch([head, tail])) + added, prefix, added,
                     message_head, message_tail)

    def wrap(self, user: str, answer_prefix: str) -> str:
        """The full text the model sees: chat template applied, ending in the prefill (if any)."""
        if self.chat.text is None:
            return user + answer_prefix
        messages = [{"role": "user", "content": user}]
        if self.mode == "prefill":
            messages.append({"role": "assistant", "content": answer_prefix})
        try:
            return render_chat(self.chat.text, messages, continue_final_message=self.mode == "prefill",
                               add_generation_prompt=self.mode == "chat", bos_token=self._tokenizer.bos_token,
                               eos_token=self._tokenizer.eos_token)
        except Exception as error:  # templates raise their own exceptions (raise_exception) as well as jinja's
            raise RulerError(f"chat template {self.chat.source!r} failed: {error}") from None

    def _split(self, rendered: str) -> tuple[str, str]:
        if rendered.count(SENTINEL) != 1:
            raise RulerError(f"chat template {self.chat.source!r} does not keep the user message intact")
        head, tail = rendered.split(SENTINEL)
        return head, tail
