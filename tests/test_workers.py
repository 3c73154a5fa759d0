"""Generation on every core: samples built in worker processes are the ones a single process builds, in the same
order, and processes start only when there is enough to build."""

from __future__ import annotations

from pathlib import Path

import ruler.workers
from ruler.cli import main
from ruler.tasks import load_tasks
from ruler.workers import POOL_MIN_TOKENS, Workers
from ruler.workspace import WorkspaceRecipe


def generate(tokenizer: Path, out: Path, workers: int) -> str:
    assert main(["generate", "--tokenizer", str(tokenizer), "--lengths", "4k,8k", "--tasks",
                 "niah_single_2,vt,qa_1", "--squad", "sample", "--samples", "2", "--workers", str(workers),
                 "--out", str(out)]) == 0
    return (out / "samples.jsonl").read_text()


def test_two_worker_processes_build_the_samples_one_process_builds(trained_tokenizer_dir, tmp_path,
                                                                   monkeypatch) -> None:
    pools = []
    start_pool = ruler.workers.start_pool

    def watched(processes: int, recipe):  # the real pool, noted when started
        pools.append(processes)
        return start_pool(processes, recipe)

    alone = generate(trained_tokenizer_dir, tmp_path / "one", 1)
    monkeypatch.setattr(ruler.workers, "start_pool", watched)
    assert generate(trained_tokenizer_dir, tmp_path / "two", 2) == alone and len(alone.splitlines()) == 12
    assert pools == [2]


def test_processes_start_only_when_there_is_enough_to_build(trained_tokenizer_dir, monkeypatch) -> None:
    monkeypatch.setattr(ruler.workers, "cores", lambda: 4)
    spec = load_tasks([]).select("niah_single_1", None)[0]
    workers = Workers(builder=None, recipe=WorkspaceRecipe(str(trained_tokenizer_dir)))  # type: ignore[arg-type]
    few = [(spec, 131072, index) for index in range(POOL_MIN_TOKENS // 131072 - 1)]
    many = few + [(spec, 131072, len(few)), (spec, 131072, len(few) + 1)]
    assert workers.processes(few) == 1 and workers.processes(many) == 4
    assert Workers(None, None, 4).processes(many) == 1  # type: ignore[arg-type]  # no recipe: the server's tokenizer
    assert Workers(None, WorkspaceRecipe("x"), 3).processes(few) == 3  # type: ignore[arg-type]  # said outright
