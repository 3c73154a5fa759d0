"""The transformers backend at long contexts on a GPU, against a bare `model.generate` on the same prompts.

    python bench/gpu_long_context.py [--lengths 32k,128k,256k,512k,1m] [--out results.json]

Builds everything offline: a BPE tokenizer trained on the shipped corpus and a randomly initialised Llama-architecture
model (hidden 768, 12 layers, GQA 12/4, ~85M parameters, bf16, sdpa attention, a 1M+ window), saved to a temporary
folder and loaded by the hf backend like any model. For each length it builds an exact-length niah_single_2 prompt,
then times the toolkit's request (backend.generate, 128 new tokens, greedy) and a bare `model.generate` on the same
token ids, and prints prefill tokens/s, peak GPU memory and toolkit / bare throughput. A length that runs out of
memory must end as an `overflow` completion, not a crash. Random weights: throughput and memory only, not accuracy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers import train_tokenizer  # noqa: E402

from ruler.backends.base import BackendOptions, Request  # noqa: E402
from ruler.backends.transformers_local import TransformersBackend  # noqa: E402
from ruler.lengths import format_length, parse_lengths  # noqa: E402
from ruler.tokenizers import load_tokenizer  # noqa: E402
from ruler.workspace import workspace_for  # noqa: E402

NEW_TOKENS = 128


def build_model(folder: Path, window: int) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=window,
                         rope_theta=50_000_000.0, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, attn_implementation="sdpa")
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)


def bare_generate(backend: TransformersBackend, text: str) -> tuple[float | None, str | None]:
    """Seconds for model.generate on the prompt's ids, as a user would write it; None and the error on OOM."""
    import torch

    ids = backend.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids.to(backend.device)
    torch.cuda.synchronize()
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            backend.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                                   do_sample=False, pad_token_id=backend.tokenizer.pad_token_id)
    except torch.cuda.OutOfMemoryError as error:
        torch.cuda.empty_cache()
        return None, str(error).splitlines()[0]
    torch.cuda.synchronize()
    return time.perf_counter() - start, None


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="32k,128k,256k,512k,1m")
    parser.add_argument("--out", default=None)
    parser.add_argument("--oom-fraction", type=float, default=0.2,
                        help="then cap GPU memory at this fraction and send the longest length again: it must end "
                             "as overflow, and a short request after it must still work")
    args = parser.parse_args()
    lengths = parse_lengths(args.lengths)
    folder = Path(tempfile.mkdtemp())
    train_tokenizer(folder)
    build_model(folder, max(lengths) + 1024)
    workspace = workspace_for(load_tokenizer(str(folder)))
    spec = workspace.registry.tasks["niah_single_2"]
    backend = TransformersBackend.create(str(folder), BackendOptions(chat_template=workspace.tokenizer.chat_template,
                                                                     concurrency=1))
    device = torch.cuda.get_device_name()
    print(f"{device}, torch {torch.__version__}, {sum(p.numel() for p in backend.model.parameters()) / 1e6:.0f}M "
          f"parameters, bf16, sdpa, {NEW_TOKENS} new tokens", flush=True)

    async def toolkit(text: str, budget: int = NEW_TOKENS):
        return await backend.generate(Request("bench", text, budget))

    warm = workspace.builder.build(spec, 4096, 0)[1]
    asyncio.run(toolkit(warm))
    bare_generate(backend, warm)
    rows = []
    print(f"{'length':>7} {'tokens':>8} {'toolkit s':>9} {'bare s':>8} {'ratio':>6} {'prefill tok/s':>13} "
          f"{'peak GiB':>8}  validity", flush=True)
    for length in lengths:
        started = time.perf_counter()
        sample, text = workspace.builder.build(spec, length, 0)
        generation = time.perf_counter() - started
        asyncio.run(toolkit(text, 1))  # both timed runs then find the allocator warmed to this length
        torch.cuda.reset_peak_memory_stats()
        completion = asyncio.run(toolkit(text))
        peak = torch.cuda.max_memory_allocated() / 2**30
        validity = completion.failure or ("truncated" if completion.finish_reason == "length" else "ok")
        bare, bare_error = bare_generate(backend, text) if not completion.failure else (None, "skipped")
        prefill = completion.timings.get("prefill_s")
        row = {"length": length, "prompt_tokens": sample.prompt_tokens, "generation_s": generation,
               "toolkit_s": completion.latency_s if not completion.failure else None, "bare_s": bare,
               "ratio": bare / completion.latency_s if bare and not completion.failure else None,
               "prefill_tokens_per_s": sample.prompt_tokens / prefill if prefill else None, "peak_gib": peak,
               "validity": validity, "error": completion.error or bare_error}
        rows.append(row)
        print(f"{format_length(length):>7} {sample.prompt_tokens:>8} "
              f"{row['toolkit_s'] or float('nan'):>9.2f} {bare or float('nan'):>8.2f} "
              f"{row['ratio'] or float('nan'):>6.3f} {row['prefill_tokens_per_s'] or float('nan'):>13.0f} "
              f"{peak:>8.1f}  {validity}{' (' + row['error'][:60] + ')' if row['error'] else ''}", flush=True)
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(args.oom_fraction)
    capped = asyncio.run(toolkit(text))
    after = asyncio.run(toolkit(warm))
    oom = {"fraction": args.oom_fraction, "length": lengths[-1], "validity": capped.failure,
           "error": (capped.error or "")[:120], "next_request": after.failure or "ok"}
    print(f"GPU memory capped at {args.oom_fraction:.0%}: {format_length(lengths[-1])} -> {oom['validity']} "
          f"({oom['error'][:80]}); a 4k request after it -> {oom['next_request']}", flush=True)
    asyncio.run(backend.aclose())
    if args.out:
        Path(args.out).write_text(json.dumps({"device": device, "rows": rows, "oom": oom}, indent=2))


if __name__ == "__main__":
    main()
