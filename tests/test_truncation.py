"""A server's silent cut told apart from a tokenizer's or a template's difference in counts, and the side it
dropped read off the needles the model still found."""

from __future__ import annotations

from ruler.scoring.truncation import find_cuts, summarise
from ruler.types import Prediction, Sample

LENGTHS = (1024, 2048, 4096, 8192)


def answered(length: int, local: int, served: int | None, index: int = 0, text: str = " 1234567.") -> Prediction:
    usage = {"prompt_tokens": served} if served is not None else {}
    return Prediction(f"niah_single_1/{length}/{index}", "niah_single_1", length, index, text, "ok", "stop", local,
                      usage, 0.1)


def run(served) -> list[Prediction]:
    """One answer per length, its local count 128 below the length, the server's count `served(local)`."""
    return [answered(length, length - 128, served(length - 128)) for length in LENGTHS]


def test_a_count_that_stops_growing_is_a_cut():
    cuts = find_cuts(run(lambda local: min(local, 3000)))
    assert cuts == {"niah_single_1/4096/0": 3000, "niah_single_1/8192/0": 3000}


def test_a_tokenizer_counting_a_fifth_fewer_at_every_length_is_no_cut():
    assert find_cuts(run(lambda local: round(local * 0.8))) == {}


def test_a_server_side_system_prompt_adding_tokens_is_no_cut():
    assert find_cuts(run(lambda local: local + 120)) == {}


def test_a_cut_below_the_shortest_length_is_found_by_its_ceiling():
    cuts = find_cuts([answered(length, length - 128, 900) for length in (2048, 4096)])
    assert set(cuts) == {"niah_single_1/2048/0", "niah_single_1/4096/0"}


def test_a_prompt_longer_than_the_stated_window_was_cut_even_without_counts():
    assert find_cuts(run(lambda local: None), served_window=4096) == {"niah_single_1/8192/0": None}


def test_refusals_and_errors_are_not_cuts():
    failed = [Prediction("t/8192/0", "niah_single_1", 8192, 0, "", validity, None, 8000, {"prompt_tokens": 10}, 0)
              for validity in ("overflow", "error")]
    assert find_cuts(run(lambda local: local) + failed) == {}


def needle_sample(depth: float, index: int, task: str = "niah_single_1", depths: list[float] | None = None) -> Sample:
    return Sample(f"{task}/8192/{index}", task, 8192, index, 42, 0, 0, 128, "string_match_all", "", ["1234567"],
                  depths or [depth], 8000, "x")


def side(cases: list[tuple[float, bool]], extra: list[tuple[Sample, Prediction]] = ()) -> str | None:
    samples = {s.id: s for s in (needle_sample(depth, i) for i, (depth, _) in enumerate(cases))}
    predictions = {f"niah_single_1/8192/{i}": answered(8192, 8000, 4000, i, " 1234567." if hit else " none.")
                   for i, (_, hit) in enumerate(cases)}
    for sample, prediction in extra:
        samples[sample.id], predictions[sample.id] = sample, prediction
    return summarise({id_: 4000 for id_ in predictions}, samples, predictions).side


def test_needles_found_only_in_the_kept_end_say_the_beginning_was_dropped():
    assert side([(0.1, False), (0.3, False), (0.6, True), (0.9, True)]) == "start"


def test_needles_found_at_both_ends_say_the_middle_was_dropped():
    assert side([(0.1, True), (0.4, False), (0.6, False), (0.9, True)]) == "middle"


def test_no_needle_found_tells_no_side():
    assert side([(0.1, False), (0.6, False), (0.9, False)]) is None


def test_multi_needle_samples_do_not_mislead_the_side():
    distractors = needle_sample(0.0, 9, "niah_multikey_1", depths=[0.05, 0.2, 0.8])  # the queried needle survived
    found = Prediction("niah_multikey_1/8192/9", "niah_multikey_1", 8192, 9, " 1234567.", "ok", "stop", 8000,
                       {"prompt_tokens": 4000}, 0.1)
    assert side([(0.1, False), (0.3, False), (0.6, True), (0.9, True)], [(distractors, found)]) == "start"
