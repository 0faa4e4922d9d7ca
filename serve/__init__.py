"""serve: the churn-mlops HTTP API (FastAPI), a thin layer over :mod:`churn_lib.serving`.

Build the app with :func:`serve.app.create_app`; run it with ``churn serve``.
Importing this package does no I/O and builds no app.
"""
