"""Progress for people, wherever the output goes: a bar on a terminal; piped or in CI, where a bar's carriage
returns pile up into one unreadable line, the same figures (done / total, rate, time left) as a line every few
seconds and one at the end."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

#: seconds between lines where there is no terminal, and what each line says
EVERY = 10.0
LINE = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left, {rate_fmt}{postfix}"


class _Lines:
    """A stream for tqdm that turns each refresh into a line of its own (once: closing repeats the last)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.last = stream, ""

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()
        if text and text != self.last:
            self.stream.write(text + "\n")
            self.last = text

    def flush(self) -> None:
        self.stream.flush()


def progress(total: int, desc: str, unit: str, initial: int = 0, stream: TextIO | None = None) -> tqdm:
    """A bar on a terminal; elsewhere a line every EVERY seconds once a phase lasts two (a quick one stays quiet)."""
    stream = stream or sys.stderr
    if stream.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=stream)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=_Lines(stream), mininterval=EVERY,
                maxinterval=EVERY, delay=2.0, bar_format=LINE)
