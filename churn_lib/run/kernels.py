"""The kernel the stage notebooks of a run execute in: one per run, started early, reset between stages.

Why one kernel, not a fresh one per stage: starting a kernel and importing
pandas, scikit-learn and matplotlib costs about as much as a stage's own cells
(on a 2-core machine most of the lab's own 4-script run time), and the first
figure another second. The stages run one after the other in one kernel, and
``%reset -f`` between them removes every variable and figure, so a notebook
reads only what the previous stage wrote to disk, as when it runs alone in
JupyterLab. What stays is module state: imported modules and their caches.

Why early: ``churn run`` calls :func:`start_early` before it imports the rest
of the library, so the kernel starts and imports on the other core while the
command prepares. Its environment is the command's; the run's home and data
folder are set inside the kernel (:meth:`RunKernel.bind`) before its first
stage. A kernel nobody claims is shut down at exit.

This module imports only the standard library (jupyter_client when a kernel starts).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

#: Run in the kernel as soon as it has started: the heavy imports and matplotlib's first figure; and
#: inline figures skip the second rendering that ``bbox_inches="tight"`` costs (churn_lib.plots lays its
#: figures out itself).
WARM_UP = ("get_ipython().run_line_magic('config', \"InlineBackend.print_figure_kwargs = {'bbox_inches': None}\")\n"
           "import pandas, churn_lib.contract, churn_lib.data, churn_lib.plots, churn_lib.run.stages\n"
           "import matplotlib.pyplot as _plt\n"
           "_fig = _plt.figure(); _fig.canvas.draw(); _plt.close(_fig); del _fig, _plt")
#: Run between two stages: the next notebook sees none of the previous one's variables or figures, and
#: counts its cells from 1; imported modules stay.
RESET = ("get_ipython().run_line_magic('reset', '-f')\n"
         "import matplotlib.pyplot as _plt\n_plt.close('all')\ndel _plt\n"
         "get_ipython().execution_count = 1")
#: The kernel's command-line options. IPython's input history is off: ``RESET`` numbers each stage's
#: cells from 1 again, and with history on, the kernel saves each cell under its session and number
#: in the SQLite file every IPython on the machine shares (``~/.ipython``): a later stage's cell
#: collides with an earlier stage's, and IPython prints "ERROR! Session/line number was not unique in
#: database. History logging moved to new session N" into whichever cell is running. No stage reads
#: the history, and a run should write nothing outside its home.
KERNEL_ARGS = ("--HistoryManager.enabled=False",)
#: Variables of the run that the kernel's environment must hold (the rest is the command's own).
_RUN_VARS = ("CHURN_HOME", "CHURN_DATA_DIR")


def _bind_code(env: dict[str, str]) -> str:
    wanted = {k: env[k] for k in _RUN_VARS if k in env}
    return ("import os as _os\n"
            f"_os.environ.update({json.dumps(wanted)})\n"
            + "".join(f"_os.environ.pop({k!r}, None)\n" for k in _RUN_VARS if k not in wanted)
            + "del _os")


class RunKernel:
    """A ``python3`` kernel for one run's stages (see the module docstring)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        import tempfile

        self.env = dict(env if env is not None else os.environ)
        # Kernels talk over Unix sockets in a private folder: no TCP ports, no
        # "running over TCP without encryption" warning on every start.
        self.sockets = tempfile.mkdtemp(prefix="churn-kernels-")
        self.km = None
        self.used = 0
        self._bind: str | None = None
        self._starting: Future | None = None
        self._starter = ThreadPoolExecutor(max_workers=1)

    def start(self) -> None:
        """Start the kernel and its warm-up in the background (:meth:`take` waits for them)."""
        if self._starting is None and self.km is None:
            self._starting = self._starter.submit(self._start)

    def bind(self, env: dict[str, str]) -> None:
        """Run this run's home and data folder into the kernel's environment before its first stage."""
        if any(self.env.get(k) != env.get(k) for k in _RUN_VARS):
            self._bind = _bind_code(env)
        self.env = dict(env)

    def _start(self):
        import asyncio

        from jupyter_client.manager import AsyncKernelManager

        async def start():
            km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(self.sockets, "k"))
            await km.start_kernel(env=self.env, extra_arguments=list(KERNEL_ARGS))
            kc = km.client()
            kc.start_channels()
            try:
                await kc.wait_for_ready(timeout=60)
                msg_id = kc.execute(WARM_UP, silent=True, store_history=False)
                while (await kc.get_shell_msg(timeout=120))["parent_header"].get("msg_id") != msg_id:
                    pass
            finally:
                kc.stop_channels()
            return km

        return asyncio.run(start())

    def take(self) -> tuple[Any, str | None]:
        """The kernel for the next stage, and code to run silently before its first cell."""
        import asyncio

        if self._starting is not None:
            future, self._starting = self._starting, None
            self.km = future.result()
        elif self.km is None or not asyncio.run(self.km.is_alive()):  # the first stage, or the kernel died
            self.close_kernel()
            self.km = self._start()  # with the run's environment: nothing to bind
            self.used, self._bind = 0, None
        self.used += 1
        code = [c for c in ((RESET if self.used > 1 else None), self._bind) if c]
        self._bind = None
        return self.km, "\n".join(code) or None

    def close_kernel(self) -> None:
        import asyncio

        km, self.km = self.km, None
        if km is None:
            return

        async def stop():
            if await km.is_alive():
                await km.shutdown_kernel(now=True)

        try:
            asyncio.run(stop())
        except Exception as exc:  # pragma: no cover - best effort
            log.warning("kernel shutdown failed: %s", exc)

    def close(self) -> None:
        import shutil

        if self._starting is not None:  # a start still under way: wait for it, then stop it
            try:
                self.km = self._starting.result()
            except Exception:  # a kernel that never started needs no shutdown
                pass
            self._starting = None
        self._starter.shutdown(wait=True)
        self.close_kernel()
        shutil.rmtree(self.sockets, ignore_errors=True)


_EARLY: RunKernel | None = None


def start_early() -> None:
    """Start the next run's kernel now, in the background, with this process's environment."""
    global _EARLY
    if _EARLY is None:
        _EARLY = RunKernel()
        _EARLY.start()
        atexit.register(_close_early)


def claim(env: dict[str, str]) -> RunKernel:
    """The kernel for a run with environment ``env``: the one started early, or a new one, starting."""
    global _EARLY
    kernel, _EARLY = _EARLY, None
    if kernel is None:
        kernel = RunKernel(env)
        kernel.start()
    else:
        kernel.bind(env)
    return kernel


def _close_early() -> None:
    global _EARLY
    kernel, _EARLY = _EARLY, None
    if kernel is not None:
        kernel.close()
