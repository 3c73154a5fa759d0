"""Why two backends answered the same prompt differently: replay each disagreement through the transformers model
and measure, at the first token where the answers part, how far apart the two candidate tokens' logits were.

    python bench/parity_margins.py RUN_HF RUN_OTHER [--model smollm2]

RUN_HF is a `--backend hf` run, RUN_OTHER a run of the same model on the same prompts by another backend (e.g. a
llama.cpp server). Small margins (a fraction of a logit) mean the greedy choice was nearly a tie, so numerical
differences between the backends (quantised matrix products, fp16 KV cache, kernel order) flip it; a large margin
at the first difference points to a real divergence (another prompt, template, tokenization or RoPE setting).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ruler.backends import backend_class  # noqa: E402
from ruler.backends.base import BackendOptions  # noqa: E402
from ruler.dataset import DatasetFolder  # noqa: E402
from ruler.predictions import latest_predictions  # noqa: E402
from ruler.tasks import load_tasks  # noqa: E402
from ruler.tokenizers import load_tokenizer  # noqa: E402
from ruler.workspace import workspace_for  # noqa: E402


def first_difference(tokenizer, a: str, b: str) -> tuple[list[int], int, int] | None:
    """The common token prefix of two answers and each answer's next token, or None when one contains the other."""
    ids_a, ids_b = tokenizer.encode(a, add_special_tokens=False), tokenizer.encode(b, add_special_tokens=False)
    common = 0
    while common < min(len(ids_a), len(ids_b)) and ids_a[common] == ids_b[common]:
        common += 1
    if common == min(len(ids_a), len(ids_b)):
        return None
    return ids_a[:common], ids_a[common], ids_b[common]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hf_run", type=Path)
    parser.add_argument("other_run", type=Path)
    parser.add_argument("--model", default="smollm2")
    args = parser.parse_args()
    import torch

    backend = backend_class("hf").create(args.model, BackendOptions(concurrency=1))
    model, tokenizer = backend.model, backend.tokenizer
    folder = DatasetFolder(args.hf_run)
    first = latest_predictions(args.hf_run / "predictions.jsonl")
    second = latest_predictions(args.other_run / "predictions.jsonl")
    workspace = workspace_for(load_tokenizer(args.model), "auto")
    specs = load_tasks().tasks
    margins = []
    for sample in folder.samples().values():
        a, b = first.get(sample.id), second.get(sample.id)
        if not a or not b or a.prediction.strip() == b.prediction.strip():
            continue
        split = first_difference(tokenizer, a.prediction, b.prediction)
        if split is None:
            continue
        common, token_a, token_b = split
        prompt = workspace.builder.rebuild(specs[sample.task], sample)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] + common
        with torch.inference_mode():
            logits = model(torch.tensor([ids]), logits_to_keep=1).logits[0, -1].float()
        margin = float(logits[token_a] - logits[token_b])
        margins.append(margin)
        print(f"{sample.id:28} after {len(common):3} tokens: hf {tokenizer.decode([token_a])!r:10} "
              f"other {tokenizer.decode([token_b])!r:10} logit margin {margin:6.3f}")
    if margins:
        values = np.abs(margins)
        print(f"{len(values)} disagreements: |margin| median {np.median(values):.3f}, max {values.max():.3f}, "
              f"share below 1 logit {np.mean(values < 1):.0%}")


if __name__ == "__main__":
    main()
