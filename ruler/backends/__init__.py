"""Backends, one module each, registered by name and imported only when chosen.

Adding a backend is one module with a `Backend` subclass and one line below.
"""

from __future__ import annotations

import difflib
import importlib

from ruler.errors import RulerError

BACKENDS = {
    "openai": ("ruler.backends.openai_compat", "OpenAICompatible", "httpx"),
    "hf": ("ruler.backends.transformers_local", "TransformersBackend", "torch"),
}


def backend_class(name: str) -> type:
    """The class registered as `name`, with an install hint when its extra is missing."""
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, BACKENDS, n=2)
        hint = f"did you mean {', '.join(close)}?" if close else f"choose from {', '.join(BACKENDS)}"
        raise RulerError(f"unknown backend {name!r} ({hint})")
    module, attribute, needs = BACKENDS[name]
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as error:
        raise RulerError(f"backend {name!r} needs {needs}: pip install 'ruler[{name}]' ({error})") from None
