"""Append-only JSONL files that survive crashes: every line is flushed and fsynced when written, and a torn
last line (a process killed mid-write) is ignored on reading and cut off before appending again."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ruler.errors import RulerError


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The complete records of `path` (none if it does not exist); a damaged line is a one-line error."""
    if not path.is_file():
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                return
            try:
                record = json.loads(line)
            except ValueError:
                raise RulerError(f"{path} line {number} is damaged (not JSON); delete that line and run the same "
                                 "command again (its request is sent again)") from None
            if not isinstance(record, dict):
                raise RulerError(f"{path} line {number} is not a record; delete that line and run again")
            yield record


class Journal:
    """An open append-only JSONL file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._repair(path)
        self._handle = path.open("ab")
        self._lock = threading.Lock()

    @staticmethod
    def _repair(path: Path) -> None:
        if not path.is_file() or path.stat().st_size == 0:
            return
        with path.open("rb+") as handle:  # a torn last line: cut back to the last newline, reading from the end
            size = handle.seek(0, os.SEEK_END)
            end = size
            while end > 0:
                start = max(0, end - (1 << 16))
                handle.seek(start)
                block = handle.read(end - start)
                if end == size and block.endswith(b"\n"):
                    return
                if (newline := block.rfind(b"\n")) >= 0:
                    handle.truncate(start + newline + 1)
                    return
                end = start
            handle.truncate(0)

    def append(self, record: dict[str, Any]) -> None:
        """Write one whole line and make it durable."""
        self.extend([record])

    def extend(self, records: list[dict[str, Any]]) -> None:
        """Write whole lines and make them durable with one fsync (a group commit); thread-safe."""
        data = b"".join(json.dumps(record, ensure_ascii=False).encode() + b"\n" for record in records)
        with self._lock:
            self._handle.write(data)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        with self._lock:
            self._handle.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
