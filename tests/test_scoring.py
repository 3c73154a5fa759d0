"""Scores as RULER computes them, intervals that cover, and the effective-length rules on constructed results and
on RULER's published rows."""

from __future__ import annotations

import numpy as np
import pytest

from ruler.scoring.aggregate import LengthMean, effective_length, effective_lengths, weighted_averages
from ruler.scoring.metrics import postprocess, score
from ruler.scoring.stats import interval, mean_of_means_interval, wilson


def ruler_string_match_all(preds, refs):
    """NVIDIA RULER's eval/synthetic/constants.py, verbatim (Apache-2.0)."""
    return round(sum([sum([1.0 if r.lower() in pred.lower() else 0.0 for r in ref]) / len(ref)
                      for pred, ref in zip(preds, refs)]) / len(preds) * 100, 2)


def ruler_string_match_part(preds, refs):
    """NVIDIA RULER's eval/synthetic/constants.py, verbatim (Apache-2.0)."""
    return round(sum([max([1.0 if r.lower() in pred.lower() else 0.0 for r in ref])
                      for pred, ref in zip(preds, refs)]) / len(preds) * 100, 2)


PREDICTIONS = [" 1234567.", "The numbers are 111 and 222", "", "\x00Paris\x1f", "FRANCE, in Europe", "none"]
REFERENCES = [["1234567"], ["111", "222", "333"], ["x"], ["paris"], ["France", "Europe", "Asia"], ["3,677 seated"]]


@pytest.mark.parametrize("metric,reference", [("string_match_all", ruler_string_match_all),
                                              ("string_match_part", ruler_string_match_part)])
def test_metrics_equal_rulers_formulas(metric, reference) -> None:
    ours = [score(metric, p, r) for p, r in zip(PREDICTIONS, REFERENCES)]
    cleaned = [postprocess(p) for p in PREDICTIONS]
    assert round(100 * sum(ours) / len(ours), 2) == reference(cleaned, REFERENCES)


def test_multi_reference_qa_credits_any_answer_as_nvidia_does_not_a_fraction_as_lm_eval() -> None:
    assert score("string_match_part", "It is in France", ["France", "French Republic", "FR-75"]) == 1.0
    assert score("string_match_all", "It is in France", ["France", "Europe"]) == 0.5


def test_postprocessing_is_rulers() -> None:
    assert postprocess("  a\x00b\x1fc \n") == "a\nb\nc"
    assert postprocess(None) == ""


def test_wilson_interval_covers_about_95_percent_at_n_50() -> None:
    rng = np.random.default_rng(1)
    for p in (0.1, 0.5, 0.9):
        hits = rng.binomial(50, p, size=4000)
        covered = np.mean([wilson(k, 50)[0] <= p <= wilson(k, 50)[1] for k in hits])
        assert 0.92 <= covered <= 0.98, (p, covered)  # Wilson's coverage oscillates around 95% with n


def test_bootstrap_interval_covers_fractional_scores() -> None:
    rng = np.random.default_rng(2)
    truth = np.clip(rng.normal(0.6, 0.25, size=2_000_000), 0, 1).mean()
    covered = []
    for trial in range(300):
        values = np.clip(rng.normal(0.6, 0.25, size=50), 0, 1)
        low, high = interval(list(values), seed=trial)
        covered.append(low <= truth <= high)
    assert 0.90 <= np.mean(covered) <= 0.98


def test_interval_of_perfect_scores_is_not_a_point() -> None:
    low, high = interval([1.0] * 10)
    assert high == pytest.approx(1.0) and low < 0.75


def test_a_mean_over_single_sample_tasks_is_not_a_point() -> None:
    low, high = mean_of_means_interval([[1.0], [0.0], [0.25], [0.75], [1.0], [0.0]])
    assert low < 0.5 < high and high - low > 0.3


def test_a_mean_over_tasks_counts_every_task_equally_at_any_size() -> None:
    low, high = mean_of_means_interval([[1.0, 1.0, 1.0, 0.5], [0.0], [0.0]])
    assert low < 0.3 < high < 0.9


def means(*values, half_width: float = 1.0) -> list[LengthMean]:
    lengths = [4096 * 2**i for i in range(len(values))]
    return [LengthMean(length, v, v - half_width, v + half_width, 13) for length, v in zip(lengths, values)]


def test_rulers_published_weighted_averages_for_gpt4_are_reproduced() -> None:
    increasing, decreasing = weighted_averages([96.6, 96.3, 95.2, 93.2, 87.0, 81.2])
    assert (round(increasing, 1), round(decreasing, 1)) == (89.0, 94.1)


@pytest.mark.parametrize("row,effective", [
    ([96.6, 96.3, 95.2, 93.2, 87.0, 81.2], 65536),     # GPT-4-1106: 64K
    ([95.5, 93.8, 91.6, 87.4, 84.7, 77.0], 32768),     # Llama-3.1-8B: 32K
    ([96.9, 96.1, 94.9, 94.1, 79.8, 53.7], 32768),     # Qwen2-72B: 32K
    ([96.5, 95.8, 95.4, 94.8, 88.4, 66.6], 65536),     # Llama-3.1-70B: 64K
    ([96.7, 95.8, 96.0, 95.9, 95.9, 94.4], 131072),    # Gemini-1.5-pro: >128K (all pass)
])
def test_rulers_published_effective_lengths_are_reproduced(row, effective) -> None:
    result = effective_length(means(*row, half_width=0.0), 85.6, "ruler")
    assert result.length == effective and result.decided


def test_an_interval_straddling_the_threshold_leaves_the_length_undecided() -> None:
    result = effective_length(means(95, 90, 86, 84, 70, half_width=3.0), 85.6, "ruler")
    assert result.length == 16384 and not result.decided
    assert result.lowest == 8192 and result.highest == 32768
    assert result.describe([4096, 8192, 16384, 32768, 65536]) == "16k (8k, 32k not ruled out)"


def test_a_decided_effective_length_says_so_plainly() -> None:
    result = effective_length(means(99, 98, 60, 40, half_width=2.0), 85.6, "ruler")
    assert result.decided and result.describe([4096, 8192, 16384, 32768]) == "8k"
    assert result.first_failing == 16384


def test_failing_at_the_shortest_length_has_no_effective_length() -> None:
    result = effective_length(means(50, 40, half_width=1.0), 85.6, "ruler")
    assert result.length is None and result.describe([4096, 8192]) == "<4k"


def test_nolima_rule_is_relative_to_the_models_own_short_score() -> None:
    ruler_rule, nolima_rule = effective_lengths(means(60, 58, 50, 30, half_width=0.5))
    assert ruler_rule.length is None
    assert nolima_rule.bar == pytest.approx(51.0) and nolima_rule.length == 8192


def test_relative_rule_is_undefined_when_the_short_score_is_near_zero() -> None:
    """SmolLM2 scoring 8 at 1k: 85% of 8 is a bar any noise clears, which printed >=2k beside RULER's <1k."""
    ruler_rule, relative = effective_lengths(means(8, 9, 2, half_width=4.0))
    assert ruler_rule.describe([4096, 8192, 16384]) == "<4k" and relative.length is None
    assert relative.describe([4096, 8192, 16384]) == (
        "undefined (the 4k score 8.0 is under 50, too low to measure a decline from)")


def test_relative_rule_is_undefined_with_a_single_length() -> None:
    """`ruler validate --claimed 4k` has one rung: 85% of its own score says nothing about a decline."""
    _, relative = effective_lengths(means(96, half_width=2.0))
    assert relative.describe([4096]) == "undefined (no length longer than 4k to compare with)"


def test_samples_to_decide_is_the_first_count_whose_interval_clears_the_bar() -> None:
    from ruler.scoring.stats import samples_to_decide, wilson

    needed = samples_to_decide(100.0, 2, 1, 85.6)
    assert wilson(needed, needed)[0] >= 0.856 > wilson(needed - 1, needed - 1)[0]
    pooled = 4 * samples_to_decide(60.0, 10, 4, 85.6)
    assert wilson(0.6 * pooled, pooled)[1] < 0.856
    assert samples_to_decide(85.6, 10, 4, 85.6) is None


def test_exact_set_precision_exposes_candidate_dumping() -> None:
    from ruler.scoring.metrics import exact_set_precision

    assert score("string_match_all", " 1234567, 7654321, 1111111.", ["1234567"]) == 1.0
    assert exact_set_precision(" 1234567, 7654321, 1111111.", ["1234567"]) == pytest.approx(1 / 3)
    assert exact_set_precision(" 1234567.", ["1234567"]) == 1.0
    assert exact_set_precision(" ABCDE, FGHIJ", ["ABCDE", "FGHIJ", "KLMNO"]) == 1.0
    assert exact_set_precision("Paris", ["Paris, France"]) is None


def states(**kinds: str) -> dict:
    from ruler.scoring.aggregate import LengthState

    return {4096 * 2**int(name[1:]): LengthState(4096 * 2**int(name[1:]), kind, "why") for name, kind in kinds.items()}


def test_an_incomplete_length_ends_the_search_and_never_passes() -> None:
    result = effective_length(means(99, 60, 99, half_width=1.0), 85.6, "ruler", states(l1="incomplete"))
    assert result.incomplete == 8192 and result.first_failing is None and result.length == 4096
    assert result.describe([4096, 8192, 16384]) == ">=4k (8k incomplete)"


def test_an_incomplete_shortest_length_leaves_the_effective_length_unknown() -> None:
    result = effective_length(means(99, 99, half_width=1.0), 85.6, "ruler", states(l0="incomplete"))
    assert result.length is None and result.describe([4096, 8192]) == "unknown (4k incomplete)"


def test_a_length_the_server_did_not_serve_whole_fails_whatever_its_answers() -> None:
    result = effective_length(means(99, 99, 99, half_width=1.0), 85.6, "ruler", states(l1="unserved"))
    assert result.length == 4096 and result.first_failing == 8192 and result.ruled_out == 8192


def test_a_failure_before_an_incomplete_length_decides_the_claim() -> None:
    from ruler.scoring.aggregate import Verdict

    failed = effective_length(means(99, 40, 99, half_width=1.0), 85.6, "ruler", states(l2="incomplete"))
    assert Verdict(16384, 16384, failed, [4096, 8192, 16384]).decision() == "fails"
    blocked = effective_length(means(99, 99, 99, half_width=1.0), 85.6, "ruler", states(l1="incomplete"))
    assert Verdict(16384, 16384, blocked, [4096, 8192, 16384]).decision() == "undecided"
    assert Verdict(4096, 16384, blocked, [4096, 8192, 16384]).decision() == "holds"
