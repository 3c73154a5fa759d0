"""Scoring: RULER's metrics on each prediction, validity of each answer, and per-cell aggregates."""
