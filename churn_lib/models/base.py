"""What a model family is: the interface a family module offers, and how its models are scored.

A family is a module (see :class:`Family`) that declares its hyperparameters
once, as the fields of a ``Params`` dataclass made with
:func:`churn_lib._params.param` (default, help, range or choices: the one
declaration and the one check every parameter of the project uses). Everything
else derives from that declaration: the train parameters
(:class:`churn_lib.learn.train.TrainParams`), the ``churn train`` flags and the
notebook's parameters cell (the stage table), the sweep's checks and the
registry entry's ``model_params``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol



@dataclass(frozen=True)
class Engine:
    """How a family's models are scored, for :class:`churn_lib.scoring.Scorer`: the engine names and the
    notes saying so, compiled (``compiled``) and when the model scores itself (``itself``)."""

    compiled: str
    compiled_note: str
    itself: str
    itself_note: str


class Family(Protocol):
    """The interface of a family module (``logreg``, ``lightgbm``; :func:`churn_lib.models.register` adds one).

    Attributes
    ----------
    NAME : str
        The family's name (the train parameter ``family``, the entry's ``model_family``).
    Params : type
        A frozen dataclass of :func:`churn_lib._params.param` fields.
    ENGINE : Engine
        What scores its models.
    LIBRARIES : tuple of str
        Libraries whose installed versions the registry entry records beside the common ones.
    """

    NAME: str
    Params: type
    ENGINE: Engine
    LIBRARIES: tuple[str, ...]

    def build(self, contract: Any, *, seed: int, params: Any) -> Any:
        """An unfitted scikit-learn-style estimator (``fit``, ``predict_proba``) for ``params`` (a ``Params``)."""

    def owns(self, model: Any) -> bool:
        """Whether ``model`` (uncalibrated) is one of this family's."""

    def compile(self, model: Any, contract: Any) -> Any:
        """A fast scorer with ``logit_one``/``proba_one``, ``logit``/``proba``, ``features``,
        ``known_categories`` and exact ``contributions_one``/``contributions`` in log-odds
        (``base + sum == log-odds``); ValueError when the model has another shape."""

    def importance(self, model: Any) -> Any:
        """What the model learned, as data: a DataFrame indexed by feature with one value column
        (its name says what it is) and ``attrs["title"]``; plots draw it."""
