"""Export: a registered model as a folder other tools load (``churn export V DIR --format mlflow``).

* :mod:`.exporter` - :func:`export`: the version, integrity-checked, written in a format; the
  ``format`` parameter's declaration (:data:`FORMAT`);
* :mod:`.mlmodel` - what an MLflow model folder holds (``MLmodel`` with the python_function flavor,
  the signature from the contract, the input example, pinned requirements, the model file's sha256),
  written without MLflow;
* :mod:`.pyfunc` - the loader MLflow imports (``loader_module``): the churn probability and the
  decision at the stored threshold, as a DataFrame;
* :mod:`.folder` - a folder built beside its target and renamed into place (``force`` swaps it).

Nothing here imports MLflow: writing needs none, and only :mod:`.pyfunc`, run by MLflow, raises MLflow's
error type when a call is refused.
"""

from .exporter import FORMAT, FORMATS, Exported, export

__all__ = ["FORMAT", "FORMATS", "Exported", "export"]
