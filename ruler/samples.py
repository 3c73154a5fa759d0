"""Builds samples: task spec + (seed, length, index) -> draft -> framed prompt -> exact size -> Sample.

Everything a sample holds derives from (seed, task, length, index) and the data, so sample 37 generated alone is
the sample 37 of a 500-sample run, and a stored recipe rebuilds its prompt byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from generators import get_generator
from generators.base import Draft, GenerationDefect, InvalidSample, Layout, derive_rng
from generators.resources import Resources
from ruler.construct import Construction
from ruler.errors import RulerError
from ruler.prompts import Frame, PromptRenderer
from ruler.sizing import fit
from ruler.tasks import TaskSpec
from ruler.tokenizers import Tokenizer
from ruler.types import Sample

#: draws tried for one sample before giving up (a broken draw is a rare coincidence)
DRAWS = 5
#: how prompts are built from recipes, pinned in every folder: a recipe stored by another way would rebuild
#: another prompt (2: distractor lines from a pool)
RECIPES = 2
#: the self-check of counting by construction: random prompts of each task at these lengths, PROBES of each
PROBE_LENGTHS = (2048, 8192, 32768)
PROBES = 2


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def prompt_budget(spec: TaskSpec, length: int) -> int:
    """The prompt tokens a sample of `length` may have: the length less the task's generation budget."""
    budget = length - spec.max_new_tokens
    if budget <= 0:
        raise RulerError(f"length {length} leaves no room for {spec.name}'s {spec.max_new_tokens}-token "
                         "generation budget; use a longer length")
    return budget


class SampleBuilder:
    def __init__(self, tokenizer: Tokenizer, renderer: PromptRenderer, resources: Resources, seed: int) -> None:
        self.tokenizer, self.renderer, self.resources, self.seed = tokenizer, renderer, resources, seed
        self.construction = Construction(tokenizer)

    def _draft(self, spec: TaskSpec, length: int, index: int, draw: int = 0,
               purpose: str | None = None) -> tuple[Draft, Frame]:
        key = (self.seed, spec.name, length, index) + ((draw,) if draw else ()) + ((purpose,) if purpose else ())
        rng = derive_rng(*key)
        try:
            draft = get_generator(spec.generator)(spec.args, length, index, rng, self.resources)
        except KeyError as error:
            raise RulerError(f"task {spec.name}: missing argument {error}") from None
        except GenerationDefect as error:
            raise RulerError(f"task {spec.name}: {error}") from None
        return draft, self.renderer.frame(spec.template, spec.answer_prefix, draft.fields)

    def preflight(self, specs: list[TaskSpec], lengths: list[int], samples: int) -> None:
        """Refuse at once a plan that cannot be built whole (a length leaving no room for an answer, a dataset with
        fewer questions than --samples), rather than after sending what could be built: every length's budget is
        checked, and each task's last sample drafted (a draft is cheap: nothing is tokenized whole)."""
        for spec in specs:
            for length in lengths:
                prompt_budget(spec, length)
            self._draft(spec, min(lengths), samples - 1)

    def _probes(self, spec: TaskSpec) -> Iterator[tuple[str, Layout, str]]:
        """Random prompts of the task for the self-check (from random streams of their own; QA asks its first
        questions), each at two sizes and with part of a unit at the end where the task allows it."""
        for length in PROBE_LENGTHS:
            for index in range(PROBES):
                try:
                    draft, frame = self._draft(spec, length, index, purpose="construction check")
                except RulerError:  # a length too short for the task: the others check it
                    continue
                units = draft.guess(max(length - spec.max_new_tokens - frame.overhead, 1))
                units = min(units, draft.max_units) if draft.max_units is not None else units
                for n in (units, max(units // 3, 1)):
                    yield frame.head, draft.layout(n, len(draft.tail(n)) // 2), frame.tail

    def build(self, spec: TaskSpec, length: int, index: int) -> tuple[Sample, str]:
        """A new sample of exactly `length` tokens (prompt + generation budget), and its prompt text. A draw that
        breaks an invariant is replaced by the next one (still a function of the sample's key alone)."""
        budget = prompt_budget(spec, length)
        constructed = self.construction.trusted(spec.name, lambda: self._probes(spec))
        for draw in range(DRAWS):
            draft, frame = self._draft(spec, length, index, draw)
            try:
                fitted = fit(draft, frame, self.tokenizer, budget, constructed)
                break
            except InvalidSample as error:
                defect = error
            except GenerationDefect as error:
                raise RulerError(f"{Sample.make_id(spec.name, length, index)}: {error}") from None
        else:
            raise RulerError(f"{Sample.make_id(spec.name, length, index)}: {DRAWS} draws broke the task's "
                             f"invariants, the last: {defect}")
        sample = Sample(
            id=Sample.make_id(spec.name, length, index), task=spec.name, length=length, index=index, seed=self.seed,
            units=fitted.units, words=fitted.words, max_new_tokens=spec.max_new_tokens, metric=spec.metric,
            answer_prefix=frame.answer_prefix, references=list(draft.references),
            depths=[round(depth, 6) for depth in fitted.depths], prompt_tokens=fitted.tokens,
            prompt_sha256=sha256_text(fitted.text), draw=draw, counted=fitted.counted,
        )
        return sample, fitted.text

    def rebuild(self, spec: TaskSpec, sample: Sample) -> str:
        """The prompt of a stored sample, from its recipe alone (no tokenization), checked against its hash."""
        return self.rebuild_request(spec, sample)[0]

    def rebuild_request(self, spec: TaskSpec, sample: Sample) -> tuple[str, str]:
        """The full prompt and the user message alone (what chat mode sends), checked against the stored hash."""
        draft, frame = self._draft(spec, sample.length, sample.index, sample.draw)
        context = draft.render(sample.units, sample.words).text
        text = frame.head + context + frame.tail
        if sha256_text(text) != sample.prompt_sha256:
            raise RulerError(f"{sample.id}: rebuilt prompt differs from the stored one (data or templates changed)")
        return text, frame.message_head + context + frame.message_tail
