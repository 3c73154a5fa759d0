"""A transformers model in process (`--backend hf`): a hub id, a local folder or a `.gguf` file.

Greedy decoding. Requests queue to one worker thread that batches those with the same budget and similar length
(left padding), so the event loop never blocks on the GPU. A prompt longer than the model's window, or one that
runs out of GPU memory, ends as `overflow` for that request; the run goes on.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ruler.backends.base import Backend, BackendOptions, Completion, Request, ServedContext
from ruler.chat_template import render_chat
from ruler.errors import RulerError
from ruler.hub import cached_or_hub
from ruler.tokenizers import EMBEDDED, embedded_gguf


def _source(model: str) -> tuple[str, dict[str, Any]]:
    """from_pretrained arguments for a hub id, a folder, a .gguf file or an embedded model name."""
    path = embedded_gguf(model) if model in EMBEDDED else Path(model)
    if str(path).lower().endswith(".gguf"):
        if not path.is_file():
            raise RulerError(f"no such GGUF file: {str(path)!r}")
        return str(path.parent), {"gguf_file": path.name}
    return model, {}


class _FirstToken:
    """A logits processor that notes when the first decoding step starts: the end of prefill (after waiting for
    the GPU, whose kernels run behind the Python that launched them)."""

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self, input_ids, scores):
        if self.at is None:
            if scores.is_cuda:
                import torch

                torch.cuda.synchronize(scores.device)
            self.at = time.perf_counter()
        return scores


class TransformersBackend(Backend):
    name = "hf"

    def __init__(self, model_name: str, model, tokenizer, device: str, chat_template: str | None,
                 batch_size: int) -> None:
        self.model_name, self.model, self.tokenizer, self.device = model_name, model, tokenizer, device
        self.chat_template, self.batch_size = chat_template, batch_size
        self.window = getattr(model.config, "max_position_embeddings", None)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @classmethod
    def create(cls, model: str, options: BackendOptions) -> TransformersBackend:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        source, extra = _source(model)
        device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
        if options.dtype and options.dtype not in dtypes:
            raise RulerError(f"unknown dtype {options.dtype!r}: use {', '.join(dtypes)}")
        dtype = dtypes[options.dtype] if options.dtype else (torch.bfloat16 if device.startswith("cuda")
                                                             else torch.float32)
        def load(local: bool) -> tuple[Any, Any]:
            return (AutoTokenizer.from_pretrained(source, local_files_only=local, **extra),
                    AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local, **extra))

        try:
            tokenizer, loaded = cached_or_hub(load, source, "model")
            loaded = loaded.to(device).eval()
        except RulerError:
            raise
        except Exception as error:  # transformers raises OSError, ValueError ... for unloadable models
            raise RulerError(f"cannot load model {model!r}: {str(error).strip().splitlines()[0]}") from None
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(model, loaded, tokenizer, device, options.chat_template,
                   batch_size=max(1, min(options.concurrency, 8)) if device.startswith("cuda") else 1)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name, "device": self.device,
                "dtype": str(self.model.dtype).removeprefix("torch.")}

    async def context(self) -> ServedContext:
        return ServedContext(trained=self.window, source="model config")

    async def generate(self, request: Request) -> Completion:
        future: Future = Future()
        self._queue.put((request, future))
        return await asyncio.wrap_future(future)

    def _ids(self, request: Request) -> list[int]:
        if request.chat:
            text = render_chat(self.chat_template or self.tokenizer.chat_template,
                               [{"role": "user", "content": request.prompt}], add_generation_prompt=True,
                               bos_token=self.tokenizer.bos_token, eos_token=self.tokenizer.eos_token)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer(request.prompt, add_special_tokens=self.chat_template is None)["input_ids"]

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._run([(request, future, self._ids(request)) for request, future in batch])

    def _run(self, batch: list[tuple[Request, Future, list[int]]]) -> None:
        """Generate for requests that share a budget, together; others and overflows separately."""
        import torch

        runnable = []
        for request, future, ids in batch:
            if self.window and len(ids) + request.max_new_tokens > self.window:
                future.set_result(Completion(failure="overflow", error=f"{len(ids)} prompt tokens + "
                                             f"{request.max_new_tokens} exceed the {self.window}-token window"))
            else:
                runnable.append((request, future, ids))
        for budget in sorted({request.max_new_tokens for request, _, _ in runnable}):
            group = [item for item in runnable if item[0].max_new_tokens == budget]
            try:
                completions = self._generate([ids for _, _, ids in group], budget)
            except torch.cuda.OutOfMemoryError as error:
                torch.cuda.empty_cache()
                completions = [Completion(failure="overflow", error=f"out of memory: {str(error).splitlines()[0]}")
                               for _ in group]
            except Exception as error:  # a model failure on one batch must not end the run
                completions = [Completion(failure="error", error=f"{type(error).__name__}: {error}")
                               for _ in group]
            for (_, future, _), completion in zip(group, completions):
                future.set_result(completion)

    def _generate(self, prompts: list[list[int]], budget: int) -> list[Completion]:
        import torch

        width = max(len(ids) for ids in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=self.device)
        marker = _FirstToken()
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=budget,
                                         do_sample=False, pad_token_id=pad, logits_processor=[marker])
        finished = time.perf_counter()
        prefill = (marker.at or finished) - started
        eos = self.model.generation_config.eos_token_id
        stops = {self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}
        completions = []
        for ids, row in zip(prompts, output[:, width:].tolist()):
            generated = []
            for token in row:
                if token in stops:
                    break
                generated.append(token)
            hit_budget = len(generated) >= budget
            completions.append(Completion(
                text=self.tokenizer.decode(generated, skip_special_tokens=True),
                finish_reason="length" if hit_budget else "stop",
                usage={"prompt_tokens": len(ids), "completion_tokens": len(generated)},
                latency_s=finished - started, timings={"prefill_s": prefill, "decode_s": finished - started - prefill},
            ))
        return completions

    async def aclose(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, 60)
