"""The model registry: ``MODELS = {name: (ConfigClass, ModelClass)}``.

The CLI choices, the contract tests and artifact loading read this mapping; add a model
by writing one file and one line here.
"""

from __future__ import annotations

from typing import Any

from behaviorlm.models.base import Recommender
from behaviorlm.models.hstu import HSTU, HSTUConfig
from behaviorlm.models.itemknn import ItemKNN, ItemKNNConfig
from behaviorlm.models.markov import Markov, MarkovConfig
from behaviorlm.models.mlp import MLP, MLPConfig
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.models.sasrec import SASRec, SASRecConfig

MODELS: dict[str, tuple[type[Any], type[Recommender]]] = {
    "pop": (PopConfig, Pop),
    "itemknn": (ItemKNNConfig, ItemKNN),
    "markov": (MarkovConfig, Markov),
    "mlp": (MLPConfig, MLP),
    "hstu": (HSTUConfig, HSTU),
    "sasrec": (SASRecConfig, SASRec),
}

__all__ = ["MODELS", "Recommender"]
