"""Project home: where every generated file of churn-mlops lives.

The home is resolved at call time (never at import): ``$CHURN_HOME`` if set,
else the nearest folder at or above the working directory holding the marker
file ``.churn-home`` (so a notebook opened by ``make lab``, whose working
directory is ``churn_lib/notebooks/``, finds the repository's), else the
working directory. :class:`Home` only computes paths; it creates folders on
request (:meth:`Home.ensure`).

A home may keep its data in a folder of its own (``data_root``, or
``$CHURN_DATA_DIR`` when the home itself comes from the environment) while
sharing the registry and reports: parallel runs of a sweep each generate,
prepare and train on their own ``raw.csv`` / ``processed.csv`` (and
``train_stats.json``, which describes that data) and still register into one
registry under its lock (see ``docs/scale-out.md``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MARKER = ".churn-home"
ENV_VAR = "CHURN_HOME"
#: A run's own data folder (set by the runner for the kernels of a sweep run).
DATA_ENV_VAR = "CHURN_DATA_DIR"


def find_home(start: str | os.PathLike | None = None) -> Path:
    """Return the project home for ``start`` (default: the working directory).

    Examples
    --------
    >>> isinstance(find_home(), Path)
    True
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).exists():
            return folder
    return here


@dataclass(frozen=True)
class Home:
    """Paths of one project home. Build with :meth:`Home.resolve` or ``Home(path)``.

    ``data_root`` (default None: ``<root>/data``) moves the data files, and the
    lab's ``train_stats.json`` that describes them, to a folder of their own;
    registry, reports and logs stay under ``root``.
    """

    root: Path
    data_root: Path | None = None

    @classmethod
    def resolve(cls, root: str | os.PathLike | "Home" | None = None) -> "Home":
        """A :class:`Home` for ``root``, or the resolved default when None.

        Only the default home honours ``$CHURN_DATA_DIR``; an explicit ``root``
        means that home's own ``data/``.
        """
        if isinstance(root, Home):
            return root
        if root:
            return cls(Path(root).expanduser().resolve())
        data = os.environ.get(DATA_ENV_VAR)
        return cls(find_home(), Path(data).expanduser().resolve() if data else None)

    # data/
    @property
    def data_dir(self) -> Path:
        return self.data_root if self.data_root is not None else self.root / "data"

    @property
    def raw_csv(self) -> Path:
        return self.data_dir / "raw.csv"

    @property
    def processed_csv(self) -> Path:
        return self.data_dir / "processed.csv"

    @property
    def quality_report_json(self) -> Path:
        return self.data_dir / "quality_report.json"

    # registry/
    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def models_dir(self) -> Path:
        return self.registry_dir / "models"

    @property
    def metadata_json(self) -> Path:
        return self.registry_dir / "metadata.json"

    @property
    def current_txt(self) -> Path:
        return self.registry_dir / "current_model.txt"

    @property
    def history_jsonl(self) -> Path:
        return self.registry_dir / "history.jsonl"

    @property
    def train_stats_json(self) -> Path:
        # With a data folder of its own, a run's statistics describe that data, not the registry's.
        return (self.data_root if self.data_root is not None else self.registry_dir) / "train_stats.json"

    @property
    def candidates_dir(self) -> Path:
        return self.registry_dir / "candidates"

    @property
    def lock_file(self) -> Path:
        return self.registry_dir / ".lock"

    # reports/ and logs/
    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def predictions_log(self) -> Path:
        return self.logs_dir / "predictions.log"

    @property
    def feedback_log(self) -> Path:
        return self.logs_dir / "feedback.log"

    @property
    def monitoring_log(self) -> Path:
        return self.reports_dir / "monitoring.jsonl"

    # configuration
    @property
    def config_yaml(self) -> Path:
        """The home's loop policy (``churn.yaml``: compare, watch); absent means the documented defaults."""
        return self.root / "churn.yaml"

    def ensure(self) -> "Home":
        """Create the generated folders (the lab's step 1); idempotent."""
        for folder in (self.data_dir, self.models_dir, self.reports_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self
