"""ruler: measure how much of a language model's advertised context window actually works."""

__version__ = "0.1.0"
