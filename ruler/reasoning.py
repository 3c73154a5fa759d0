"""Reasoning models think before they answer; only the answer is scored.

Thinking arrives in three shapes: a separate field of the response (`reasoning_content`, `reasoning`: vLLM's and
SGLang's reasoning parsers, OpenRouter, llama.cpp), `<think>...</think>` inline (DeepSeek-R1, Qwen3, Nemotron; the
opening tag is often in the chat template, so only the closing one comes back), or GPT-OSS's harmony channels
(`<|channel|>analysis<|message|>...<|end|>...<|channel|>final<|message|>answer`, or the same with the special
tokens stripped by the server: `analysis...assistantfinalanswer`). A text that ends inside its thinking ran out of
budget before answering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
#: one harmony message: its channel and its text, up to the token that ends it (or the end of the output)
HARMONY_MESSAGE = re.compile(r"<\|channel\|>(\w+)[^<]*(?:<\|constrain\|>[^<]*)?<\|message\|>(.*?)"
                             r"(?=<\|end\|>|<\|return\|>|<\|call\|>|<\|start\|>|$)", re.S)
#: harmony with its special tokens removed (skip_special_tokens): roles and channel names run into the text
STRIPPED_HARMONY = re.compile(r"^\s*analysis(?P<thinking>.*)assistantfinal(?P<answer>.*)$", re.S)


@dataclass(frozen=True)
class Split:
    answer: str
    reasoning: str = ""
    #: the text ended inside its reasoning: the model never reached an answer
    unfinished: bool = False


def split_reasoning(text: str) -> Split:
    """The answer and the reasoning in a model's raw output."""
    if THINK_CLOSE in text:
        thinking, _, answer = text.rpartition(THINK_CLOSE)
        return Split(answer.strip(), thinking.replace(THINK_OPEN, "").strip())
    if THINK_OPEN in text:
        before, _, thinking = text.partition(THINK_OPEN)
        return Split(before.strip(), thinking.strip(), unfinished=True)
    if "<|channel|>" in text:
        messages = HARMONY_MESSAGE.findall(text)
        finals = [body for channel, body in messages if channel == "final"]
        thinking = "\n".join(body.strip() for channel, body in messages if channel != "final")
        return Split(finals[-1].strip(), thinking) if finals else Split("", thinking, unfinished=True)
    stripped = STRIPPED_HARMONY.match(text)
    if stripped:
        return Split(stripped["answer"].strip(), stripped["thinking"].strip())
    return Split(text)
