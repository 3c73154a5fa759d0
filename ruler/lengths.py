"""Context lengths as users write them: `4k`, `128k`, `1m` (binary, RULER's convention) or plain integers."""

import re

from ruler.errors import RulerError

_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}
_PATTERN = re.compile(r"^\s*(\d+)\s*([km]?)\s*$", re.IGNORECASE)


def parse_length(text: str) -> int:
    """`64k` -> 65536, `1m` -> 1048576, `128000` -> 128000."""
    match = _PATTERN.match(text)
    if not match or int(match.group(1)) <= 0:
        raise RulerError(f"bad length {text!r}: use a positive integer or a size such as 4k, 128k, 1m")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_lengths(text: str) -> list[int]:
    """A comma list of lengths, deduplicated and sorted ascending."""
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise RulerError("no lengths given: use e.g. --lengths 4k,64k,128k")
    return sorted({parse_length(part) for part in parts})


def format_length(tokens: int) -> str:
    """The inverse of parse_length where it is exact: 65536 -> `64k`, 128000 -> `128000`."""
    for suffix, unit in (("m", _UNITS["m"]), ("k", _UNITS["k"])):
        if tokens % unit == 0:
            return f"{tokens // unit}{suffix}"
    return str(tokens)
