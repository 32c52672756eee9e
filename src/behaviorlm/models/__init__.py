"""The model registry: ``MODELS = {name: (ConfigClass, ModelClass)}``.

The CLI choices, the contract tests and artifact loading read this mapping; add a model
by writing one file and one line here.
"""

from __future__ import annotations

from typing import Any

from behaviorlm.models.base import Recommender

MODELS: dict[str, tuple[type[Any], type[Recommender]]] = {}

__all__ = ["MODELS", "Recommender"]
