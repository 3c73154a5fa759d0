"""Lengths as users write them: binary suffixes (RULER's convention), plain integers, comma lists."""

import pytest

from ruler.errors import RulerError
from ruler.lengths import format_length, parse_length, parse_lengths


@pytest.mark.parametrize("text,tokens", [("4k", 4096), ("64K", 65536), ("128k", 131072), ("1m", 1048576),
                                         ("128000", 128000), (" 2k ", 2048)])
def test_lengths_parse_binary_suffixes_and_integers(text: str, tokens: int) -> None:
    assert parse_length(text) == tokens


def test_a_comma_list_is_sorted_and_deduplicated() -> None:
    assert parse_lengths("128k,4k,4096,1m") == [4096, 131072, 1048576]


@pytest.mark.parametrize("text", ["", "0", "-4k", "4g", "four", "1.5k", "4kk", ","])
def test_bad_lengths_are_refused(text: str) -> None:
    with pytest.raises(RulerError):
        parse_lengths(text)


def test_lengths_format_back_to_their_short_form() -> None:
    assert [format_length(n) for n in (4096, 1048576, 128000, 100000)] == ["4k", "1m", "125k", "100000"]
