"""Serving: the model a long-running process serves (and its challenger), and their logged predictions.

One responsibility: turn validated feature rows into predictions with the
registry's current model and append each one to ``logs/predictions.log``;
when a challenger is set, score the requests it samples with it too, off the
response path, as lines of their own. The HTTP layer (serve/) is a thin shell
over :class:`Service`.

* :class:`ModelHolder` follows ``registry/current_model.txt`` without a
  restart. Each request costs one ``stat()`` of the pointer; the model is
  reloaded only when the pointer file changed (it is replaced atomically, so
  its inode and times change), after its sha256 matched the registry. A pointer
  naming a model that cannot be loaded keeps the last good model in service
  and makes the status ``degraded`` with the reason; the load is retried when
  the pointer changes again or every ``retry_interval`` seconds. With no good
  model at all the status is ``unavailable``.
* :class:`PredictionLog` appends lines with :mod:`churn_lib.logs.predictions` (one
  ``write()`` per request on an ``O_APPEND`` descriptor: several worker
  processes never tear or interleave lines) and remembers failures, which
  show in each response (``logged: false``) and in the status.
* :meth:`Service.request_contract` is the contract requests are validated
  against: the served model's (its registered copy), else the home's.
* :class:`ChallengerHolder` follows ``registry/challenger.txt`` the same way
  (a challenger that cannot be loaded or fails is dropped, never kept), and
  :class:`Shadow` scores the requests :func:`churn_lib.registry.sampled` picks
  after the champion's line is written: a request only queues a job; the
  caller drains the queue after its answer is sent (:meth:`Shadow.drain`; the
  HTTP layer does it in a background task of the response), a thread takes
  what nobody drained, and the challenger's lines are appended
  (``"role": "challenger"``, the champion's ``request_id``). Its answer is never returned; its failures are
  counted and shown in :meth:`Service.health`, never an error to the client.

The uvicorn launcher (``churn serve``) lives in ``serve/run.py``.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import contract as _contract
from .contract import records as _records
from .logs import predictions as predlog
from . import registry, scoring
from ._io import iso as _iso
from .exceptions import ChurnError, NoCurrentModel
from .home import Home

log = logging.getLogger(__name__)

STATUS_OK, STATUS_DEGRADED, STATUS_UNAVAILABLE = "ok", "degraded", "unavailable"
#: A challenger's status when none is set.
STATUS_NONE = "none"
#: Jobs of the challenger scored per write of its lines, at most.
SHADOW_CHUNK = 64
#: Jobs of the challenger queued before a response's background drain scores them (one write for all).
SHADOW_BATCH = 16

#: Environment variable that puts prometheus_client in multi-process mode (one folder shared by workers).
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ModelHolder:
    """The model one process serves, following the registry's current pointer.

    Parameters
    ----------
    home : Home
    retry_interval : float, default=5.0
        Seconds between retries while the pointer names a model that cannot be loaded.
    fast : bool, default=True
        Use the compiled numpy scorer when it verifies (see :func:`churn_lib.scoring.build`).

    Examples
    --------
    >>> holder = ModelHolder(Home.resolve("/tmp/churn"))   # doctest: +SKIP
    >>> holder.refresh(); holder.require().version        # doctest: +SKIP
    'v1'
    """

    def __init__(self, home: Home, *, retry_interval: float = 5.0, fast: bool = True) -> None:
        self.home = home
        self.retry_interval = retry_interval
        self.fast = fast
        self._pointer_path = str(self.pointer_file)  # stat()ed per request: build the path once
        self._scorer: scoring.Scorer | None = None
        self._seen: Any = ()  # pointer signature at the last refresh; () = never refreshed
        self._pointer: str | None = None  # what the pointer named at the last refresh
        self._problem: str | None = "no model loaded yet"
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self.loaded_at: float | None = None
        self.loads = 0
        self.load_failures = 0

    @property
    def pointer_file(self) -> Path:
        """The pointer this holder follows."""
        return self.home.current_txt

    def _read_pointer(self) -> str | None:
        return registry.current_file(home=self.home)

    def _named_none(self, signature: Any) -> bool:
        return self._failed(signature, None, f"{self.home.current_txt} names no model (no model is current: "
                                             "train one that passes the gate, or `churn promote VERSION`)")

    def _unloadable(self, signature: Any, name: str | None, problem: str) -> bool:
        return self._failed(signature, name, problem)

    # --- cheap, per request ---------------------------------------------------

    def _signature(self) -> Any:
        try:
            st = os.stat(self._pointer_path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return ("error", exc.errno)
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)

    def needs_refresh(self) -> bool:
        """True when the pointer file changed since the last refresh, or a failed load is due a retry."""
        if self._signature() != self._seen:
            return True
        return self._problem is not None and time.monotonic() >= self._retry_at

    @property
    def scorer(self) -> scoring.Scorer | None:
        """The model being served (None when none is)."""
        return self._scorer

    def require(self) -> scoring.Scorer:
        """The model being served.

        Raises
        ------
        NoCurrentModel
            With the reason, when no model can be served.
        """
        scorer = self._scorer
        if scorer is None:
            raise NoCurrentModel(f"no model can be served: {self._problem}")
        return scorer

    # --- reloading --------------------------------------------------------------

    def refresh(self, *, wait: bool = True) -> bool:
        """Re-read the pointer and load the model it names if that is not the one served.

        Parameters
        ----------
        wait : bool, default=True
            False returns at once when another thread is already refreshing
            (requests meanwhile keep the model being served).

        Returns
        -------
        bool
            True when the served model changed.
        """
        if not self._lock.acquire(blocking=wait):
            return False
        try:
            return self._refresh()
        finally:
            self._lock.release()

    def _refresh(self) -> bool:
        signature = self._signature()  # taken first: a change during the load is seen next time
        try:
            name = self._read_pointer()
        except (OSError, ValueError, ChurnError) as exc:  # unreadable, not text, or damaged
            reason = getattr(exc, "strerror", None) or exc
            return self._unloadable(signature, None, f"cannot read {self.pointer_file}: {reason}")
        if name is None:
            return self._named_none(signature)
        current = self._scorer
        if current is not None and current.model_file == name:
            self._seen, self._pointer, self._problem = signature, name, None
            return False
        try:
            entry = registry.find(name, registry.load_entries(home=self.home))
            scorer = scoring.from_entry(entry, home=self.home, fast=self.fast)
        except ChurnError as exc:
            return self._unloadable(signature, name, f"cannot load {name}: {exc}")
        except Exception as exc:  # a broken target must never take the service down
            log.exception("unexpected error loading %s", name)
            return self._unloadable(signature, name, f"cannot load {name}: {type(exc).__name__}: {exc}")
        self._scorer = scorer
        self._seen, self._pointer, self._problem = signature, name, None
        self.loaded_at = time.time()
        self.loads += 1
        log.info("serving %s (%s, threshold %.2f, %s)", scorer.version, scorer.model_file, scorer.threshold,
                 scorer.engine)
        return True

    def _failed(self, signature: Any, name: str | None, problem: str) -> bool:
        if problem != self._problem:
            kept = self._scorer.version if self._scorer else None
            log.warning("%s; %s", problem, f"still serving {kept}" if kept else "no model is served")
        self._seen, self._pointer, self._problem = signature, name, problem
        self._retry_at = time.monotonic() + self.retry_interval
        self.load_failures += 1
        return False

    def status(self) -> dict[str, Any]:
        """``status`` (ok / degraded / unavailable), ``reason``, the pointer and the served model."""
        scorer, problem = self._scorer, self._problem
        if scorer is None:
            state = STATUS_UNAVAILABLE
        elif problem is not None:
            state = STATUS_DEGRADED
            problem = f"{problem}; still serving {scorer.model_file}"
        else:
            state = STATUS_OK
        return {"status": state, "reason": problem, "pointer": self._pointer, "scorer": scorer,
                "loaded_at": _iso(self.loaded_at)}


class ChallengerHolder(ModelHolder):
    """The challenger one process scores in shadow, following ``registry/challenger.txt`` like
    :class:`ModelHolder` follows the current pointer (one ``stat()`` per request).

    Unlike the champion, a challenger that cannot be loaded is not kept: it is
    dropped (no shadow scoring) and the status is ``degraded`` with the reason,
    retried every ``retry_interval`` seconds or when the pointer changes. No
    pointer is status ``none``. :meth:`drop` drops a challenger that failed
    while served; :meth:`check_file` notices its file altered on disk.
    """

    def __init__(self, home: Home, *, retry_interval: float = 5.0, fast: bool = True) -> None:
        super().__init__(home, retry_interval=retry_interval, fast=fast)
        self._problem = None
        self.settings: registry.Challenger | None = None
        self.sample = 1.0
        self._file_seen: Any = None
        self._paths: dict[str, str] = {}

    @property
    def pointer_file(self) -> Path:
        return self.home.registry_dir / registry.CHALLENGER_TXT

    def _read_pointer(self) -> str | None:
        settings = registry.read_challenger(home=self.home)
        self.settings = settings
        self.sample = settings.sample if settings is not None else 1.0
        return settings.model_file if settings is not None else None

    def _named_none(self, signature: Any) -> bool:
        changed = self._scorer is not None
        if changed:
            log.info("challenger %s cleared", self._scorer.version)
        self._scorer, self._seen, self._pointer, self._problem = None, signature, None, None
        return changed

    def _unloadable(self, signature: Any, name: str | None, problem: str) -> bool:
        self._scorer = None  # a challenger that cannot be loaded is dropped, never kept
        return self._failed(signature, name, problem)

    def _refresh(self) -> bool:
        changed = super()._refresh()
        scorer = self._scorer
        if changed and scorer is not None:
            self._file_seen = self._file_signature(scorer)
            log.info("challenger %s at sample %g", scorer.version, self.sample)
        return changed

    def drop(self, scorer: scoring.Scorer, problem: str) -> None:
        """Stop scoring ``scorer`` if it is the challenger (it failed while served); the status says why, a
        reload is retried."""
        with self._lock:
            if self._scorer is not scorer:
                return
            log.warning("challenger %s dropped: %s", self._scorer.version, problem)
            self._scorer = None
            self._problem = problem
            self._retry_at = time.monotonic() + self.retry_interval
            self.load_failures += 1

    def _file_signature(self, scorer: scoring.Scorer) -> Any:
        path = self._paths.get(scorer.model_file)
        try:
            if path is None:  # stat()ed per shadow job: build the path once
                path = self._paths[scorer.model_file] = str(registry.model_path(scorer.entry, home=self.home))
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def check_file(self, scorer: scoring.Scorer) -> str | None:
        """Why the challenger's model file no longer is the one loaded (None: it is); off the response path."""
        seen = self._file_signature(scorer)
        if seen == self._file_seen:
            return None
        try:
            registry.verify(scorer.entry, home=self.home)
        except ChurnError as exc:
            return f"its file was altered while served: {exc}"
        self._file_seen = seen
        return None

    def status(self) -> dict[str, Any]:
        scorer, problem, settings = self._scorer, self._problem, self.settings
        state = STATUS_DEGRADED if problem is not None else STATUS_OK if scorer is not None else STATUS_NONE
        return {"status": state, "reason": problem, "pointer": self._pointer, "scorer": scorer,
                "sample": self.sample if settings is not None else None, "loaded_at": _iso(self.loaded_at)}


@dataclass
class _ShadowJob:
    """Rows a challenger scores after the champion answered them (the champion's ids, features and time)."""

    scorer: scoring.Scorer
    champion: _contract.Contract
    rows: Sequence[Mapping[str, Any]]
    request_ids: Sequence[str]
    ids: Sequence[Mapping[str, Any] | None]
    ts: float
    queued: float = field(default_factory=time.monotonic)


class Shadow:
    """Scores the challenger off the response path: a queue drained after each response is sent, with a
    daemon thread as the backstop.

    A request only appends a job to a ``deque`` (no lock, no thread woken).
    Whoever answers the request drains the queue once the answer is sent
    (:meth:`drain` with ``limit``; the service's HTTP layer does it in a
    background task of the response, on its own thread): the scoring then
    takes no GIL hand-off from the requests. A thread wakes every
    ``interval`` seconds and drains the jobs nobody drained within that time
    (a caller without an HTTP layer, a burst beyond ``limit``). Each job is
    scored with the job's challenger, and the lines of up to
    :data:`SHADOW_CHUNK` jobs are appended in one ``write()`` (the
    challenger's :class:`PredictionLog`, on the same file). It counts what it
    logged and what failed. A failure (an exception, a contract that cannot
    read the champion's rows, a model file altered while served, a full
    queue, a line that cannot be written) is counted, never seen by the
    client; all but the last two drop the challenger
    (:meth:`ChallengerHolder.drop`). :meth:`stop` drains the queue.

    Parameters
    ----------
    holder : ChallengerHolder
    log : PredictionLog
    max_backlog : int, default=10000
        Jobs waiting beyond this are not scored (counted as failures).
    interval : float, default=0.05
        Seconds between the thread's checks: how late a job nobody drained is scored.
    """

    def __init__(self, holder: ChallengerHolder, log: PredictionLog, *, max_backlog: int = 10_000,
                 interval: float = 0.05) -> None:
        self.holder = holder
        self.log = log
        self.max_backlog = max_backlog
        self.interval = interval
        self.predictions = 0
        self.failures = 0
        self.last_error: str | None = None
        self._jobs: collections.deque = collections.deque()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._drain_lock = threading.Lock()  # one drainer at a time: the counts and the order of the lines
        self._count_lock = threading.Lock()
        self._warned: dict[str, float] = {}
        self._compatible: dict[tuple[str, str], str | None] = {}
        # scorers that failed, by identity (a reload is a new Scorer; a weak reference tells a reused id apart)
        self._dropped: dict[int, weakref.ref] = {}

    @property
    def pending(self) -> int:
        """Jobs queued and not yet scored."""
        return len(self._jobs)

    def due(self) -> bool:
        """Whether a drain now is worth its write: :data:`SHADOW_BATCH` jobs are queued, or the oldest
        waited half an ``interval`` (the thread takes it at a whole one)."""
        jobs = self._jobs
        return len(jobs) >= SHADOW_BATCH or (bool(jobs) and time.monotonic() - jobs[0].queued >= self.interval / 2)

    def submit(self, job: _ShadowJob) -> None:
        """Queue a job (the thread is started on first use)."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="churn-shadow", daemon=True)
                    self._thread.start()
        if len(self._jobs) >= self.max_backlog:
            self._failed(len(job.rows), f"the challenger fell {self.max_backlog} jobs behind; rows not scored")
            return
        self._jobs.append(job)

    def stop(self, timeout: float = 10.0) -> None:
        """Score and log what is queued, then end the thread (a later job starts it again)."""
        with self._start_lock:
            thread = self._thread
            if thread is not None:
                self._stopping.set()
                thread.join(timeout)
                self._stopping.clear()
                self._thread = None
        self.drain()

    def _run(self) -> None:
        while True:
            stopping = self._stopping.wait(self.interval)
            if stopping:
                self.drain()
                return
            jobs = self._jobs
            # only what waited a whole interval: the rest is drained by whoever answered it, without a GIL hand-off
            if jobs and time.monotonic() - jobs[0].queued >= self.interval:
                self.drain()

    def drain(self, limit: int | None = None, *, wait: bool = True) -> int:
        """Score and log the queued jobs, :data:`SHADOW_CHUNK` jobs per write.

        Parameters
        ----------
        limit : int, optional
            Score at most this many jobs (default: all, including those queued meanwhile).
        wait : bool, default=True
            False returns at once when another thread is draining (it takes the queue).

        Returns
        -------
        int
            The jobs taken from the queue.
        """
        if not self._drain_lock.acquire(blocking=wait):
            return 0
        try:
            taken, checked = 0, {}
            while self._jobs and (limit is None or taken < limit):
                lines, n = [], min(SHADOW_CHUNK, len(self._jobs))
                if limit is not None:
                    n = min(n, limit - taken)
                for _ in range(n):
                    lines += self._score(self._jobs.popleft(), checked)
                    taken += 1
                if lines:
                    error = self.log.write(b"".join(lines))
                    if error is None:
                        with self._count_lock:
                            self.predictions += len(lines)
                    else:
                        self._failed(len(lines), error)
            return taken
        finally:
            self._drain_lock.release()

    def _score(self, job: _ShadowJob, checked: dict[int, str | None]) -> list[bytes]:
        """The challenger's log lines for one job; none when it fails (counted, the challenger dropped).
        ``checked``: each scorer's file check in this drain (one ``stat()`` per drain, not per job)."""
        scorer = job.scorer  # the challenger when the request was answered, even if replaced since
        dropped = self._dropped.get(id(scorer))
        if dropped is not None and dropped() is scorer:
            self._failed(len(job.rows), f"challenger {scorer.version} was dropped before this job was scored")
            return []
        try:
            problem = self._incompatible(job)
            if problem is None:
                if id(scorer) not in checked:
                    checked[id(scorer)] = self.holder.check_file(scorer)
                problem = checked[id(scorer)]
            if problem is None:
                start = time.perf_counter()
                if len(job.rows) == 1:
                    proba = [scorer.proba_one(job.rows[0])]
                else:
                    proba = scorer.predict_proba(job.rows).tolist()
                latency_ms = round((time.perf_counter() - start) * 1000.0, 3)
                return [predlog.format_line(predlog.record(
                    request_id=rid, model_file=scorer.model_file, version=scorer.version, threshold=scorer.threshold,
                    probability=p, features=dict(row), latency_ms=latency_ms, ts=job.ts, ids=dict(cid) if cid else None,
                    role=_records.CHALLENGER))
                    for row, rid, cid, p in zip(job.rows, job.request_ids, job.ids, proba)]
        except Exception as exc:  # a broken challenger must never reach a client
            problem = f"scoring failed: {type(exc).__name__}: {exc}"
        self._failed(len(job.rows), f"challenger {scorer.version}: {problem}")
        self._dropped[id(scorer)] = weakref.ref(scorer)
        self.holder.drop(scorer, f"challenger {scorer.version} dropped: {problem}")
        return []

    def _incompatible(self, job: _ShadowJob) -> str | None:
        key = (job.champion.sha256(), job.scorer.contract.sha256())
        if key not in self._compatible:
            problem = registry.incompatibility(job.champion, job.scorer.contract)
            self._compatible[key] = None if problem is None else f"cannot read the current model's requests: {problem}"
        return self._compatible[key]

    def _failed(self, n: int, message: str) -> None:
        with self._count_lock:
            self.failures += n
            self.last_error = message
        now = time.monotonic()
        if now - self._warned.get(message, -60.0) >= 1.0:  # a queue behind fails every request: one line a second
            self._warned = {message: now}
            log.warning("%s", message)


class PredictionLog:
    """Appends prediction lines to one log file and remembers whether that works."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.ok = True

    def write(self, data: bytes) -> str | None:
        """Append lines made by :func:`churn_lib.logs.predictions.format_line` in one ``write()``;
        None when written, else what went wrong."""
        try:
            predlog.write_lines(data, path=self.path, fsync=self.fsync)
        except OSError as exc:
            return self.failed(f"cannot write {self.path}: {exc.strerror or exc}")
        self.ok = True
        return None

    def failed(self, message: str) -> str:
        self.failures += 1
        self.last_error, self.last_error_at, self.ok = message, time.time(), False
        log.error("%s", message)
        return message

    def status(self) -> dict[str, Any]:
        return {"path": str(self.path), "ok": self.ok, "failures": self.failures,
                "last_error": self.last_error, "last_error_at": _iso(self.last_error_at)}


def _request_ids(n: int) -> list[str]:
    """``n`` random UUID4 strings from one ``urandom`` call (uuid.uuid4() costs a syscall each)."""
    raw = bytearray(os.urandom(16 * n))
    out = []
    for i in range(0, 16 * n, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40  # version 4
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw[i:i + 16].hex()
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


@dataclass
class Prediction:
    """One prediction: its record (the log's keys, in order), the exact log line, and why the
    line could not be written (None when it was)."""

    record: dict[str, Any]
    line: bytes = field(repr=False)
    log_error: str | None

    @property
    def logged(self) -> bool:
        return self.log_error is None

    def to_dict(self) -> dict[str, Any]:
        """The record plus ``logged`` and ``log_error``: the API's response."""
        return {**self.record, "logged": self.logged, "log_error": self.log_error}


@dataclass
class BatchPrediction:
    """Predictions of one batch: one record per row (the log's keys, in order) and the
    exact log lines (``lines[i]`` is ``records[i]`` as JSON), which a caller may reuse."""

    model_version: str
    version: str
    threshold: float
    latency_ms: float
    log_error: str | None
    records: list[dict[str, Any]]
    lines: list[bytes] = field(repr=False)

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def logged(self) -> bool:
        return self.log_error is None

    def header(self) -> dict[str, Any]:
        """Everything but the records, in the API's order."""
        return {"model_version": self.model_version, "version": self.version, "threshold": self.threshold,
                "count": self.count, "latency_ms": self.latency_ms, "logged": self.logged,
                "log_error": self.log_error}

    def to_dict(self) -> dict[str, Any]:
        return {**self.header(), "results": self.records}


class Service:
    """Predictions from the registry's current model, each appended to the prediction log.

    Parameters
    ----------
    home : Home or path, optional
    retry_interval : float, default=5.0
        See :class:`ModelHolder`.
    fast : bool, default=True
        See :class:`ModelHolder`.
    on_predict : callable, optional
        Called as ``on_predict(version, n_churn, n_stay)`` after each prediction
        (the HTTP layer counts predictions by class with it).
    """

    def __init__(self, home: Home | str | None = None, *, retry_interval: float = 5.0, fast: bool = True,
                 on_predict: Callable[[str, int, int], None] | None = None) -> None:
        self.home = Home.resolve(home)
        self.holder = ModelHolder(self.home, retry_interval=retry_interval, fast=fast)
        self.log = PredictionLog(self.home.predictions_log)
        self.challenger = ChallengerHolder(self.home, retry_interval=retry_interval, fast=fast)
        self.shadow = Shadow(self.challenger, PredictionLog(self.home.predictions_log))
        self.on_predict = on_predict
        self._home_contract: _contract.Contract | None = None
        self._contract_problem: str | None = None

    def start(self) -> None:
        """Create the logs folder, load the current model and the challenger (failures become the status)."""
        try:
            self.home.logs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.log.failed(f"cannot create {self.home.logs_dir}: {exc.strerror or exc}")
        try:
            self._home_contract = _contract.load(self.home)
        except ChurnError as exc:
            self._contract_problem = str(exc)
            log.warning("%s", exc)
        self.holder.refresh()
        self.challenger.refresh()

    def stop(self) -> None:
        """Score and log what the challenger still has queued (at shutdown)."""
        self.shadow.stop()

    def refresh(self) -> None:
        """Reload the current model and the challenger if their pointers moved (one ``stat()`` each)."""
        if self.holder.needs_refresh():
            self.holder.refresh(wait=False)
        if self.challenger.needs_refresh():
            self.challenger.refresh(wait=False)

    def _shadow(self, champion: scoring.Scorer, records: Sequence[dict[str, Any]]) -> None:
        """Queue the records the challenger samples (by request id) for scoring off the response path."""
        challenger = self.challenger.scorer
        if challenger is None or challenger.model_file == champion.model_file:
            return
        sample = self.challenger.sample
        picked = [r for r in records if registry.sampled(r["request_id"], sample)]
        if picked:
            self.shadow.submit(_ShadowJob(challenger, champion.contract, [r["features"] for r in picked],
                                          [r["request_id"] for r in picked], [r.get(predlog.ID_KEY) for r in picked],
                                          picked[0]["ts"]))

    def request_contract(self) -> _contract.Contract:
        """The contract requests are validated against: the served model's, else the home's.

        Raises
        ------
        NoCurrentModel
            No model is served and the home's contract cannot be read.
        """
        scorer = self.holder.scorer
        if scorer is not None:
            return scorer.contract
        if self._home_contract is None:
            if self._contract_problem is None:  # start() not called (a bare Service in a test)
                try:
                    self._home_contract = _contract.load(self.home)
                except ChurnError as exc:
                    self._contract_problem = str(exc)
            if self._home_contract is None:
                raise NoCurrentModel(f"no model can be served and the home's contract cannot be read: "
                                     f"{self._contract_problem}")
        return self._home_contract

    def predict(self, features: Mapping[str, Any], *, request_id: str | None = None,
                ids: Mapping[str, Any] | None = None, explain: int | None = None) -> Prediction:
        """Score one row of validated, normalised features; log it.

        ``explain=N`` adds the top N reasons (:meth:`churn_lib.scoring.Scorer.explain_one`)
        to the record, and so to the log line.

        Returns
        -------
        Prediction
            The log record (:data:`churn_lib.logs.predictions.KEYS`, in order), its log
            line, and the log error (None when the line was written).

        Raises
        ------
        NoCurrentModel
            When no model can be served.
        """
        start = time.perf_counter()
        scorer = self.holder.require()
        explanation = None
        if explain is None:
            proba = scorer.proba_one(features)
        else:
            proba, explanation = scorer.explain_one(features, scoring.check_explain(explain))
        record = predlog.record(
            request_id=request_id if request_id is not None else str(uuid.uuid4()), model_file=scorer.model_file,
            version=scorer.version, threshold=scorer.threshold, probability=proba, features=dict(features),
            latency_ms=round((time.perf_counter() - start) * 1000.0, 3), ts=round(time.time(), 3),
            ids=dict(ids) if ids else None, explanation=explanation)
        line = predlog.format_line(record)
        error = self.log.write(line)
        if self.on_predict is not None:
            prediction = record["prediction"]
            self.on_predict(record["version"], prediction, 1 - prediction)
        if error is None:  # a challenger's line pairs with a logged champion line, or is not written
            self._shadow(scorer, (record,))
        return Prediction(record, line, error)

    def predict_batch(self, rows: Sequence[Mapping[str, Any]], request_ids: Sequence[str | None] | None = None,
                      ids: Sequence[Mapping[str, Any] | None] | None = None,
                      explain: int | None = None) -> BatchPrediction:
        """Score several rows with one model (one vectorised call); log them in one write.

        ``rows`` hold validated, normalised features; they are used as the
        records' ``features`` (not copied). ``explain=N`` adds each row's top N reasons.
        """
        start = time.perf_counter()
        scorer = self.holder.require()
        explanations: list[dict[str, Any] | None] = [None] * len(rows)
        if explain is None:
            proba = scorer.predict_proba(rows).tolist()
        else:
            values, base, top, contrib, other = scorer.explain(rows, scoring.check_explain(explain))
            proba = values.tolist()
            names = scorer.features
            explanations = [
                {"base": b, "contributions": [{"feature": names[k], "value": row[names[k]], "contribution": c}
                                              for k, c in zip(ks, cs)], "other": o}
                for row, b, ks, cs, o in zip(rows, base.tolist(), top.tolist(), contrib.tolist(), other.tolist())]
        latency_ms = round((time.perf_counter() - start) * 1000.0, 3)
        ts = round(time.time(), 3)
        threshold, model_file, version = scorer.threshold, scorer.model_file, scorer.version
        request_ids_filled = list(request_ids) if request_ids is not None else [None] * len(rows)
        missing = [i for i, rid in enumerate(request_ids_filled) if rid is None]
        for i, rid in zip(missing, _request_ids(len(missing))):
            request_ids_filled[i] = rid
        customer = list(ids) if ids is not None else [None] * len(rows)
        records = [predlog.record(request_id=rid, model_file=model_file, version=version, threshold=threshold,
                                  probability=p, features=row, latency_ms=latency_ms, ts=ts, ids=cid,
                                  explanation=e)
                   for row, rid, p, cid, e in zip(rows, request_ids_filled, proba, customer, explanations)]
        lines = [predlog.format_line(r) for r in records]
        error = self.log.write(b"".join(lines))
        if self.on_predict is not None:
            churn = sum(r["prediction"] for r in records)
            self.on_predict(version, churn, len(records) - churn)
        if error is None:
            self._shadow(scorer, records)
        return BatchPrediction(model_file, version, threshold, latency_ms, error, records, lines)

    def health(self) -> dict[str, Any]:
        """The service's state: ``status`` ok / degraded / unavailable, the served model, the reason."""
        model = self.holder.status()
        scorer: scoring.Scorer | None = model["scorer"]
        reasons = [model["reason"]] if model["reason"] else []
        status = model["status"]
        if not self.log.ok:
            reasons.append(f"predictions are not being logged: {self.log.last_error}")
            if status == STATUS_OK:
                status = STATUS_DEGRADED
        challenger = self.challenger_health()
        if challenger["status"] == STATUS_DEGRADED:
            reasons.append(challenger["reason"])
            if status == STATUS_OK:
                status = STATUS_DEGRADED
        return {
            "status": status,
            "current_model": scorer.model_file if scorer else None,
            "version": scorer.version if scorer else None,
            "threshold": scorer.threshold if scorer else None,
            "reason": "; ".join(reasons) or None,
            "pointer": model["pointer"],
            "scorer": scorer.engine if scorer else None,
            "scorer_note": scorer.engine_note if scorer else None,
            "loaded_at": model["loaded_at"],
            "contract": scorer.contract.name if scorer else None,
            "prediction_log": self.log.status(),
            "pid": os.getpid(),
            "challenger": challenger,
        }

    def challenger_health(self) -> dict[str, Any]:
        """The challenger's state: ``status`` none / ok / degraded (dropped, with the ``reason``), the model,
        its sample, and this process's counts of its logged predictions and failures."""
        state = self.challenger.status()
        scorer: scoring.Scorer | None = state["scorer"]
        reason = state["reason"]
        if reason is not None:
            reason = f"challenger: {reason}"
        return {"status": state["status"], "reason": reason, "pointer": state["pointer"],
                "model_file": scorer.model_file if scorer else None, "version": scorer.version if scorer else None,
                "threshold": scorer.threshold if scorer else None, "sample": state["sample"],
                "loaded_at": state["loaded_at"], "predictions": self.shadow.predictions,
                "failures": self.shadow.failures, "last_error": self.shadow.last_error}

    def model(self) -> dict[str, Any]:
        """The served model's registry entry.

        Raises
        ------
        NoCurrentModel
            When no model can be served.
        """
        return dict(self.holder.require().entry)
