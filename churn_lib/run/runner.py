"""Runner: execute the lifecycle stages for one model version.

:func:`run` executes the stage notebooks with papermill (kernel ``python3``)
and leaves, per version, ``reports/<version>/<NN_stage>.ipynb`` and ``.html``
plus ``reports/<version>/run.json``, then refreshes ``reports/index.html``.
Drift checks go to ``reports/<version>/drift/05_monitor_drift-<time>.html``;
a run that only evaluates or checks drift records itself in
``reports/<version>/runs/<time>.json`` and leaves the version's run.json alone.
Parameters are checked against each notebook's ``parameters`` cell before any
kernel starts. The train stage only stages its model; it is registered once
every stage of the run has succeeded, so a failed run leaves the registry
unchanged.

:func:`run_direct` calls the same stages straight through churn_lib; it is the
reference the notebook runner is measured against.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import contract as _contract
from . import kernels, reports
from .. import registry
from ..learn import train as training
from . import stages as _stages
from .._io import atomic_write_json, atomic_write_text, file_stamp, sha256_file, utc_now
from ..exceptions import InvalidParameter, StageFailed
from ..home import Home

log = logging.getLogger(__name__)

#: Stage name -> notebook, in execution order (from the stage table).
NOTEBOOKS: dict[str, str] = {name: s.notebook for name, s in _stages.TABLE.items()}
STAGES = _stages.DEFAULT_RUN  # a default run
#: Libraries a notebook run records beside the model's own (run.json).
_RUN_LIBRARIES = ("matplotlib", "papermill", "nbconvert", "ipykernel")

EventHandler = Callable[[str, str, float | None], None]


def notebooks_dir() -> Path:
    """The stage notebooks, shipped inside the package (``churn_lib/notebooks``)."""
    return Path(__file__).resolve().parent.parent / "notebooks"


# --- parameters ----------------------------------------------------------------

resolve_stages = _stages.resolve


def check_parameters(stage_list: tuple[str, ...], params: Mapping[str, Any], *,
                     contract: _contract.Contract | None = None) -> dict[str, dict[str, Any]]:
    """Split ``params`` per stage; refuse unknown names, wrong types and values that do not apply,
    before any kernel starts (see :func:`churn_lib.run.stages.check`)."""
    from .. import data

    per_stage = _stages.check(stage_list, params)
    if "generate" in per_stage and contract is not None:
        data_params, faults = _stages.TABLE["generate"].build(per_stage["generate"])
        data.check_params(contract, data_params, faults)
    return per_stage


# --- execution ----------------------------------------------------------------

def _engine() -> str:
    """Register (once) a papermill engine that runs a notebook on a given, started kernel."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    name = "churn"
    if name in papermill_engines._engines:
        return name

    class _Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     km=None, setup=None, **kwargs):
            kwargs.pop("input_path", None)
            client = PapermillNotebookClient(
                nb_man, km=km, kernel_name=kernel_name, log=logging.getLogger("papermill"),
                log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file,
                startup_timeout=start_timeout, timeout=execution_timeout, shutdown_kernel="immediate", **kwargs)
            if setup:
                async def run_setup(**_):  # on papermill's own connection, before the first cell
                    await client.async_wait_for_reply(client.kc.execute(setup, silent=True, store_history=False))

                client.on_notebook_start = run_setup
            try:
                return client.execute(cleanup_kc=False)  # the kernel is the run's: _Kernel stops it
            finally:
                if client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register(name, _Engine)
    return name


def _exporter():
    """The HTML exporter (template loaded once per process: it costs about a second)."""
    global _EXPORTER
    if _EXPORTER is None:
        from nbconvert import HTMLExporter

        exporter = HTMLExporter(template_name="lab", embed_images=True)
        # Reports are read offline: no script from a CDN (plain tables and PNGs need none).
        for trait in ("mathjax_url", "require_js_url", "jquery_url", "widget_renderer_url", "mermaid_js_url"):
            if exporter.has_trait(trait):
                setattr(exporter, trait, "")
        _EXPORTER = exporter
    return _EXPORTER


_EXPORTER = None


def export_html(ipynb: Path) -> Path:
    """Export an executed notebook to self-contained HTML beside it (images inline, no CDN scripts)."""
    import nbformat

    body, _ = _exporter().from_notebook_node(nbformat.read(ipynb, as_version=4))
    body = _strip_remote_scripts(body)
    html = ipynb.with_suffix(".html")
    atomic_write_text(html, body)
    return html


def _strip_remote_scripts(body: str) -> str:
    import re

    return re.sub(r'<script[^>]*\bsrc="(?:https?:)?//[^"]*"[^>]*>\s*</script>', "", body)


@dataclass
class StageRecord:
    stage: str
    notebook: str
    status: str = "pending"
    seconds: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    ipynb: str | None = None
    html: str | None = None
    error: str | None = None


def run(*, home: Home | str | None = None, version: str | None = None, stages: Any = None,
        params: Mapping[str, Any] | None = None, log_output: bool = False,
        on_event: EventHandler | None = None, folder: Path | None = None,
        promote: bool = True) -> dict[str, Any]:
    """Execute stage notebooks for one model version; return the run record (``run.json``).

    Parameters
    ----------
    home : Home or path, optional
    version : str, optional
        The version label of this run; default the next ``vN`` when the run
        trains, else the latest registered version.
    stages : str or sequence, optional
        Stage or notebook names; default generate, prepare, train, evaluate.
    params : mapping, optional
        Notebook parameters by name, checked before any kernel starts.
    log_output : bool, default=False
        Stream cell output to the ``papermill`` logger.
    on_event : callable, optional
        ``on_event(stage, "start" | "ok" | "failed", seconds)`` for progress lines.
    promote : bool, default=True
        False registers the model without making it current even when it
        passes the gate (a sweep promotes only its best version, at the end).

    Raises
    ------
    InvalidParameter
        Unknown stage or parameter, wrong type, taken version label.
    ContractError
        The home's dataset.yaml is not valid.
    StageFailed
        A stage failed; its executed notebook and HTML are kept
        (``.report_path``), ``run.json`` records it, the registry is unchanged.
    """
    home = Home.resolve(home)
    params = dict(params or {})
    folder = folder or notebooks_dir()
    stage_list = resolve_stages(stages)
    contract = _contract.load(home)
    per_stage = check_parameters(stage_list, params, contract=contract)
    kernel = kernels.claim(_kernel_env(home))  # started already by `churn run`, or now: it starts while we prepare
    try:
        return _run(home, version, stage_list, params, per_stage, contract, folder, log_output, on_event, promote,
                    kernel)
    finally:
        kernel.close()


def _run(home: Home, version: str | None, stage_list: tuple[str, ...], params: dict[str, Any],
         per_stage: dict[str, dict[str, Any]], contract: _contract.Contract, folder: Path, log_output: bool,
         on_event: EventHandler | None, promote: bool, kernel: kernels.RunKernel) -> dict[str, Any]:
    engine = _engine()  # imports papermill: a missing one fails before a version is claimed
    version = _run_version(home, version or params.get("version"), stage_list)
    home.ensure()
    out_dir = home.reports_dir / version
    out_dir.mkdir(parents=True, exist_ok=True)
    # A run that makes data or a model owns reports/<version>/run.json; a later
    # evaluate or drift check of that version keeps its own record beside it.
    stamp = file_stamp(micro=True)
    creates = bool(set(_stages.CREATES) & set(stage_list))
    record_path = out_dir / "run.json" if creates else out_dir / "runs" / f"{stamp}.json"
    for stage in stage_list:
        if "version" in _stages.TABLE[stage].params:
            per_stage[stage]["version"] = version
    if "train" in stage_list:
        per_stage["train"]["register"] = False
    record: dict[str, Any] = {
        "version": version, "status": "running", "started_at_utc": utc_now(),
        "parameters": {k: v for k, v in params.items() if k != "version"},
        "parameters_changed": _stages.changed(params),  # what the index shows: no stage table needed there
        "contract": {"name": contract.name, "sha256": contract.sha256()},
        "stages": [], "libraries": training.library_versions(extra=_RUN_LIBRARIES), "home": str(home.root),
        "data_dir": str(home.data_dir),
    }
    start_all = time.perf_counter()
    run = _StageRun(home, folder, out_dir, stamp, log_output, on_event or (lambda *a: None), kernel, engine)
    failed = run.execute(stage_list, per_stage, record["stages"])
    if "train" in stage_list:
        failed = _register(home, version, promote, record, failed)
    record["status"] = "failed" if failed else "ok"
    record["seconds"] = round(time.perf_counter() - start_all, 3)
    record["finished_at_utc"] = utc_now()
    record["data_sha256"] = sha256_file(home.processed_csv) if home.processed_csv.exists() else None
    record["stages"] = [vars(s) for s in record["stages"]]
    atomic_write_json(record_path, record)
    reports.write_index(home=home)
    if failed:
        report = home.root / (failed.html or failed.ipynb or record_path)
        raise StageFailed(f"stage {failed.stage} of {version} failed ({failed.error}); report: {report}",
                          report_path=str(report), version=version, stage=failed.stage)
    return record


@dataclass
class _StageRun:
    """The stages of one run through papermill on one kernel, each notebook exported to HTML beside it."""

    home: Home
    folder: Path
    out_dir: Path
    stamp: str
    log_output: bool
    emit: EventHandler
    kernel: kernels.RunKernel
    engine: str  # the papermill engine that runs a notebook on the started kernel

    def execute(self, stage_list: tuple[str, ...], per_stage: dict[str, dict[str, Any]],
                done: list[StageRecord]) -> StageRecord | None:
        """Run the stages in order until one fails (appending their records to ``done``); the failed one."""
        failed: StageRecord | None = None
        with ThreadPoolExecutor(max_workers=1) as pool:
            # HTML export of a stage overlaps the next stage, except a training stage: its linear algebra
            # uses both cores, and an export beside it slowed it more than the export took alone.
            pool.submit(_exporter)  # loads nbconvert's template while the kernel starts
            exports: list[tuple[StageRecord, Future]] = []
            held: list[tuple[StageRecord, Path]] = []
            try:
                for k, stage in enumerate(stage_list):
                    rec = StageRecord(stage, NOTEBOOKS[stage], parameters=per_stage[stage])
                    done.append(rec)
                    ipynb = self._stage(rec)
                    if ipynb.exists():
                        held.append((rec, ipynb))
                    if rec.status == "failed":
                        failed = rec
                        break
                    if k + 1 < len(stage_list) and stage_list[k + 1] == "train":
                        continue  # the exports wait until the training stage is done
                    exports += [(r, pool.submit(export_html, path)) for r, path in held]
                    held = []
            finally:
                self.kernel.close()
                exports += [(r, pool.submit(export_html, path)) for r, path in held]
            self._collect(exports)
        return failed

    def _stage(self, rec: StageRecord) -> Path:
        """Execute one stage's notebook into the reports (its status, error and time in ``rec``); the notebook."""
        import papermill
        from papermill.exceptions import PapermillExecutionError

        stage = rec.stage
        ipynb = (self.out_dir / "drift" / f"{NOTEBOOKS[stage]}-{self.stamp}.ipynb" if stage == "monitor_drift"
                 else self.out_dir / f"{NOTEBOOKS[stage]}.ipynb")
        ipynb.parent.mkdir(parents=True, exist_ok=True)
        rec.ipynb = str(ipynb.relative_to(self.home.root))
        self.emit(stage, "start", None)
        t0 = time.perf_counter()
        try:
            km, setup = self.kernel.take()
            papermill.execute_notebook(
                str(self.folder / f"{NOTEBOOKS[stage]}.ipynb"), str(ipynb), parameters=rec.parameters,
                engine_name=self.engine, kernel_name="python3", progress_bar=False, log_output=self.log_output,
                km=km, setup=setup)  # saved cell by cell (0.3 s a run): a dying kernel leaves its report
            rec.status = "ok"
        except PapermillExecutionError as exc:
            rec.status, rec.error = "failed", f"{exc.ename}: {exc.evalue}"
        except Exception as exc:  # a kernel that died or never started
            rec.status, rec.error = "failed", f"{type(exc).__name__}: {exc}"
        rec.seconds = round(time.perf_counter() - t0, 3)
        self.emit(stage, rec.status, rec.seconds)
        return ipynb

    def _collect(self, exports: list[tuple[StageRecord, Future]]) -> None:
        """Record each finished HTML export in its stage's record; a failed export is logged, the run stands."""
        for rec, fut in exports:
            try:
                rec.html = str(fut.result().relative_to(self.home.root))
            except Exception as exc:  # the run's verdict stands; say the report is missing
                log.warning("HTML export of %s failed: %s", rec.ipynb, exc)


def _register(home: Home, version: str, promote: bool, record: dict[str, Any],
              failed: StageRecord | None) -> StageRecord | None:
    """Register the staged model of a run whose stages all succeeded (else discard it); the failed step."""
    if failed is not None:
        registry.discard_candidate(version, home=home)
        return failed
    try:
        entry, promoted = registry.register_candidate(version, home=home, promote_if_passed=promote)
        record["entry"] = _entry_summary(entry, promoted)
    except Exception as exc:
        failed = StageRecord("register", "-", status="failed", error=str(exc))
        record["stages"].append(failed)
    return failed


def _kernel_env(home: Home) -> dict[str, str]:
    """The kernel's environment: this home, and its own data folder when it has one."""
    from ..home import DATA_ENV_VAR, ENV_VAR

    env = {**os.environ, ENV_VAR: str(home.root)}
    env.pop(DATA_ENV_VAR, None)
    if home.data_root is not None:
        env[DATA_ENV_VAR] = str(home.data_root)
    return env


def _run_version(home: Home, version: str | None, stages: tuple[str, ...]) -> str:
    """The run's version label; a new one is claimed atomically by creating its reports folder.

    Runs that make data or a model get a label of their own (the next ``vN``
    free in both the registry and ``reports/``), so concurrent runs never
    share one. Runs of evaluate / monitor_drift alone attach to the latest
    registered version unless told otherwise.
    """
    with registry.lock(home=home):
        entries = registry.load_entries(home=home)
        taken = {e["version"] for e in entries}
        if version is not None:
            registry.validate_label(version)
            if "train" in stages and version in taken:
                raise InvalidParameter(f"version {version!r} is already registered; choose another label "
                                       f"or omit --version to get the next one", name="version")
            if "train" not in stages and version not in taken and {"evaluate", "monitor_drift"} & set(stages):
                raise InvalidParameter(f"version {version!r} is not registered (registered: "
                                       f"{', '.join(sorted(taken)) or 'none'})", name="version")
            return version
        if not set(_stages.CREATES) & set(stages):
            if "monitor_drift" in stages:  # drift is about the traffic of the model being served
                current = registry.current_entry(home=home)
                if current is not None:
                    return current["version"]
            if entries:
                return entries[-1]["version"]
            raise InvalidParameter("no model is registered yet: include the train stage or pass --version",
                                   name="version")
        home.reports_dir.mkdir(parents=True, exist_ok=True)
        n = int(registry.next_version(entries)[1:])
        while True:
            label = f"v{n}"
            try:
                (home.reports_dir / label).mkdir()  # the claim: fails if another run has it
                return label
            except FileExistsError:
                n += 1


def _entry_summary(entry: dict[str, Any], promoted: bool) -> dict[str, Any]:
    return {"version": entry["version"], "model_file": entry["model_file"], "passed_gate": entry["passed_gate"],
            "promoted": promoted, "threshold": entry["threshold"], "metrics": entry["metrics"],
            "gate_reasons": entry.get("gate_reasons", [])}


# --- the same stages, straight through the library ------------------------------

@dataclass
class RunResult:
    """What a direct run did: per-stage seconds, the registered entry, the gate verdict."""

    version: str | None = None
    passed_gate: bool | None = None
    promoted: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    entry: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None


def run_direct(*, home: Home | str | None = None, version: str | None = None, stages=None,
               params: Mapping[str, Any] | None = None) -> RunResult:
    """Run the stages straight through the library, no notebooks, no reports.

    ``params`` take the notebooks' parameter names (the stage table's:
    ``n_rows``, ``seed``, ``source``, fault rates, quality thresholds, training
    parameters), checked as for a notebook run; ``seed`` seeds both the data
    and the training. Raises the first stage's error.
    """
    from .. import data, quality
    from ..learn import evaluation

    home = Home.resolve(home).ensure()
    params = dict(params or {})
    stage_list = resolve_stages(stages)
    contract = _contract.load(home)
    per_stage = check_parameters(stage_list, params, contract=contract)
    result = RunResult()
    for stage in stage_list:
        start = time.perf_counter()
        built = _stages.TABLE[stage].build(per_stage[stage])
        if stage == "generate":
            data_params, faults = built
            data.make_raw(home=home, contract=contract, params=data_params, faults=faults)
        elif stage == "prepare":
            (thresholds,) = built
            result.quality = quality.prepare(home=home, thresholds=thresholds, contract=contract).to_dict()
        elif stage == "train":
            (train_params,) = built
            trained = training.train(home=home, version=version, params=train_params)
            result.entry, result.promoted = trained.entry, trained.promoted
            result.version, result.passed_gate = trained.version, trained.passed_gate
        elif stage == "evaluate":
            result.evaluation = evaluation.evaluate(result.version or version, home=home).to_dict()
        else:
            raise InvalidParameter(f"stage {stage} has no direct path; run it with notebooks", name="stages")
        result.seconds[stage] = round(time.perf_counter() - start, 3)
        log.info("stage %s done in %.2f s", stage, result.seconds[stage])
    return result
