"""``churn export``: a registered model, integrity-checked, written as a folder another tool loads.

:func:`export` finds the version in the registry, loads it the way every
command does (:func:`churn_lib.scoring.from_entry`: the model file and its
contract copy must match their sha256), and writes the folder of the format
(``mlflow``: :mod:`.mlmodel`) beside the target, renaming it into place only
when it is complete (:mod:`.folder`). Refused, with nothing written: an
unknown version, a damaged model file, a target that is a file or a non-empty
folder (unless ``force``), a target holding the project home, a target whose
folder is not writable.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import registry, scoring
from .._params import Param
from ..exceptions import ChurnError
from ..home import Home
from . import folder as _folder
from . import mlmodel

#: The formats ``churn export`` writes.
FORMATS = ("mlflow",)
#: The ``format`` parameter (``churn export --format``), declared once.
FORMAT = Param("format", "mlflow", "the format of the exported folder: mlflow (an MLflow pyfunc model)", str,
              choices=FORMATS)


@dataclass(frozen=True)
class Exported:
    """What :func:`export` wrote: the version, the folder, and what the folder's model answers."""

    version: str
    folder: str
    format: str
    model_family: str
    threshold: float
    calibrated: bool
    model_file: str
    model_sha256: str
    features: tuple[str, ...]
    requirements: tuple[str, ...] = field(default=())
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        calibrated = ", calibrated" if self.calibrated else ""
        return "\n".join([
            f"{self.version} ({self.model_family}{calibrated}, threshold {self.threshold:g}) exported to {self.folder} "
            f"as an MLflow model in {self.seconds:.1f} s",
            f"predict: mlflow.pyfunc.load_model({self.folder!r}).predict(frame) -> probability, prediction",
            f"serve:   mlflow models serve -m {self.folder} --env-manager local",
        ])


def export(target: str, folder: str | os.PathLike, *, home: Home | str | None = None, format: str = "mlflow",
           force: bool = False) -> Exported:
    """Write registered model ``target`` as a folder of ``format``.

    Parameters
    ----------
    target : str
        A version label or model file name.
    folder : path
        The folder to write: new, or empty (its parents are created).
    home : Home or path, optional
        The project home (default: resolved as every command resolves it).
    format : {"mlflow"}, default="mlflow"
        An MLflow model folder (python_function flavor; see :mod:`churn_lib.export.mlmodel`).
    force : bool, default=False
        Replace a non-empty ``folder`` (atomically where the system can swap two folders).

    Returns
    -------
    Exported

    Raises
    ------
    InvalidParameter
        An unknown format.
    ModelNotFound
        No registered model by that name.
    IntegrityError
        The model file or its contract copy does not match its registered sha256, or cannot be loaded.
    ChurnError
        ``folder`` is a file, is not empty (without ``force``), holds the project home, or its parent
        folder is not writable.

    Examples
    --------
    >>> from churn_lib.export import export                              # doctest: +SKIP
    >>> export("v1", "exported/v1", home="~/churn").folder               # doctest: +SKIP
    '/home/me/exported/v1'
    """
    started = time.perf_counter()
    FORMAT.check(format)
    home = Home.resolve(home)
    entry = registry.get(target, home=home)
    where = Path(folder).expanduser().resolve()
    if where == home.root or where in home.root.parents:  # --force would remove the registry with the old folder
        raise ChurnError(f"{where} holds the project home {home.root}: export to a folder outside it",
                         path=str(where))
    with _folder.replacing(where, force=force) as new:
        scorer = scoring.from_entry(entry, home=home)
        pins = mlmodel.write(new, scorer, home=home)
    return Exported(version=scorer.version, folder=str(where), format=format,
                    model_family=scorer.family, threshold=scorer.threshold,
                    calibrated=scorer.calibration is not None, model_file=scorer.model_file,
                    model_sha256=entry["model_sha256"], features=scorer.features, requirements=tuple(pins),
                    seconds=time.perf_counter() - started)
