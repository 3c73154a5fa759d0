"""Scoring: RULER's metrics on each prediction, validity of each answer, and per-cell aggregates."""

#: Llama-2-7B-chat's RULER score at 4K: RULER's bar for a length to count as effective
RULER_THRESHOLD = 85.6
