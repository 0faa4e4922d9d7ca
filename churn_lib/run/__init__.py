"""Notebook runs: the stage table, the papermill runner, the run kernel, the reports index."""
