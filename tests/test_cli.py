"""The `ruler` command: generation end to end in a subprocess, and every bad input a one-line error, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ruler.cli import main


def ruler(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruler.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)


def test_generate_writes_a_dataset_and_an_export(trained_tokenizer_dir, tmp_path) -> None:
    out, export = tmp_path / "data", tmp_path / "export.jsonl"
    done = ruler("generate", "--tokenizer", str(trained_tokenizer_dir), "--lengths", "4k,8k", "--tasks",
                 "niah_single_1,qa_2", "--samples", "2", "--hotpotqa", "sample", "--out", str(out),
                 "--export", "jsonl", str(export))
    assert done.returncode == 0, done.stderr
    assert "8 samples" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["lengths"] == [4096, 8192] and manifest["chat_template"] == "tokenizer"
    assert len(export.read_text().splitlines()) == 8
    again = ruler("generate", "--tokenizer", str(trained_tokenizer_dir), "--lengths", "4k,8k", "--tasks",
                  "niah_single_1,qa_2", "--samples", "2", "--hotpotqa", "sample", "--out", str(out))
    assert again.returncode == 0 and len((out / "samples.jsonl").read_text().splitlines()) == 8


@pytest.mark.parametrize("args,message", [
    (["--lengths", "4q"], "bad length"),
    (["--tasks", "niah_sngle_1"], "unknown task"),
    (["--suite", "everything"], "unknown suite"),
    (["--tokenizer", "/no/such/tokenizer"], "cannot load tokenizer"),
    (["--haystack-file", "/no/such/essays.json", "--tasks", "niah_single_2"], "haystack file not found"),
    (["--tasks", "qa_1", "--squad", "/no/such/squad.json"], "--squad"),
    (["--chat-template", "/no/such.jinja"], "chat template not found"),
    (["--lengths", "100"], "use a longer length"),
    (["--lengths", "200"], "use a longer length"),
    (["--samples", "0"], "--samples"),
])
def test_bad_input_is_one_line_and_exit_code_2(trained_tokenizer_dir, tmp_path, capsys, args, message) -> None:
    base = {"--tokenizer": str(trained_tokenizer_dir), "--lengths": "4k", "--tasks": "niah_single_1",
            "--out": str(tmp_path / "out")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    if "--suite" in base:
        base.pop("--tasks")
    assert main(["generate", *[part for pair in base.items() for part in pair]]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ruler: error:") and message in lines[0], lines


def test_missing_required_option_is_one_line(capsys) -> None:
    assert main(["generate", "--lengths", "4k"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--tokenizer" in err


def test_tasks_lists_tasks_and_suites() -> None:
    done = ruler("tasks")
    assert done.returncode == 0 and "qa_2" in done.stdout and "suite niah:" in done.stdout
