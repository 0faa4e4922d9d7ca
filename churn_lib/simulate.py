"""Traffic simulator: prediction requests drawn from the training distribution,
or with a chosen shift, written to the prediction log or sent to a running
service; for demos of drift monitoring and for its tests.

Rows come from the lab's generator (the population the lab's training data
was drawn from, with a seed of their own; only for the lab's contract) or are
resampled from the model's training split of ``data/processed.csv`` (the
default for a file source; their id columns come along). A :class:`Shift`
then moves a numeric feature's mean (in training standard deviations), scales
its spread around the training mean, or redraws a categorical feature with
other shares, by feature name. Values are clipped to the contract's valid
ranges and integers stay integers, so every row is a request the API accepts.

Written rows carry the real scores of a registered model (its threshold,
file name and label, as the API logs them), built by :func:`churn_lib.logs.predictions.record`.
Sent rows go to ``<url>/predict`` one POST each; only loopback addresses are
accepted, so a demo never sends traffic to a real service by mistake.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from . import contract as _contract
from . import data, drift, registry, scoring
from .logs import predictions as predlog
from .learn import train as training
from .exceptions import ChurnError, InvalidParameter, NoCurrentModel, RegistryError
from .home import Home

log = logging.getLogger(__name__)

SOURCES = ("generator", "data")
#: Rows appended per write (each write lands whole: see :func:`churn_lib.logs.predictions.write_lines`).
WRITE_BATCH = 5000


@dataclass(frozen=True)
class Shift:
    """A change of the traffic against the training distribution.

    Parameters
    ----------
    mean : dict, optional
        ``{feature: k}``: add ``k`` training standard deviations to a numeric feature.
    scale : dict, optional
        ``{feature: s}``: multiply a numeric feature's distance to the training mean by ``s`` (> 0).
    mix : dict, optional
        ``{feature: {category: share}}``: draw a categorical feature with these shares
        (normalised; categories outside the contract are allowed, to simulate unseen ones),
        or a boolean one with shares of ``true`` and ``false``.

    Examples
    --------
    With a feature of the lab's contract (any numeric feature's name works):

    >>> Shift(mean={"tenure_months": 1.0}).is_null
    False
    """

    mean: Mapping[str, float] = field(default_factory=dict)
    scale: Mapping[str, float] = field(default_factory=dict)
    mix: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, values in (("mean", self.mean), ("scale", self.scale)):
            for name, v in values.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                    raise InvalidParameter(f"{kind} shift of {name} must be a number, got {v!r}", name=kind)
                if kind == "scale" and v <= 0:
                    raise InvalidParameter(f"scale of {name} must be positive, got {v!r}", name=kind)
        for name, shares in self.mix.items():
            values = list(shares.values())
            if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in values) \
                    or sum(values) <= 0:
                raise InvalidParameter(f"mix of {name} needs non-negative shares with a positive sum, "
                                       f"got {dict(shares)!r}", name="mix")

    def check(self, contract: _contract.Contract) -> None:
        """Refuse shifts of features the contract does not have, or of the wrong type."""
        numbers = [f.name for f in contract.features if f.type in (_contract.INTEGER, _contract.FLOAT)]
        mixable = [f.name for f in contract.features if f.type in (_contract.CATEGORICAL, _contract.BOOLEAN)]
        for kind, values in (("mean", self.mean), ("scale", self.scale)):
            for name in values:
                if name not in numbers:
                    raise InvalidParameter(f"{kind} shift of {name!r}: not a numeric feature "
                                           f"({', '.join(numbers) or 'none'})", name=kind)
        for name, shares in self.mix.items():
            if name not in mixable:
                raise InvalidParameter(f"mix of {name!r}: not a categorical or boolean feature "
                                       f"({', '.join(mixable) or 'none'})", name="mix")
            if contract.feature(name).type == _contract.BOOLEAN and set(shares) - {"true", "false"}:
                raise InvalidParameter(f"mix of the boolean {name} takes the shares true and false", name="mix")

    @property
    def is_null(self) -> bool:
        return not (self.mean or self.scale or self.mix)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": dict(self.mean), "scale": dict(self.scale), "mix": {k: dict(v) for k, v in self.mix.items()}}


def _moments(base: pd.DataFrame, names: list[str], profile: drift.Profile | None) -> dict[str, tuple[float, float]]:
    out = {}
    for n in names:
        if profile is not None and n in profile.numeric:
            r = profile.numeric[n]
            out[n] = (r.mean, r.std)
        else:
            x = pd.to_numeric(base[n], errors="coerce")
            out[n] = (float(x.mean()), float(x.std(ddof=1)) or 1.0)
    return out


def _training_rows(home: Home, contract: _contract.Contract, entry: Mapping[str, Any] | None) -> pd.DataFrame:
    """The model's training split of ``data/processed.csv`` (all of it when no model says how it split)."""
    frame = data.read_csv(Home.resolve(home).processed_csv, contract)
    if entry is not None and "seed" in entry:
        try:
            X_train, _, _, _ = training.split(frame, contract, test_size=entry.get("params", {}).get("test_size", 0.25),
                                              seed=entry["seed"])
            frame = frame.loc[X_train.index]
        except ValueError as exc:  # a processed file too small or one-class: resample all of it
            log.warning("resampling all of %s: %s", home.processed_csv, exc)
    return frame.reset_index(drop=True)


def draw(n_rows: int, *, seed: int = 0, shift: Shift | None = None, profile: drift.Profile | None = None,
         source: str | None = None, home: Home | str | None = None, contract: _contract.Contract | None = None,
         entry: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Draw ``n_rows`` request rows (the contract's features, and its id columns from data), optionally shifted.

    Parameters
    ----------
    n_rows : int
    seed : int, default=0
        Seeds local generators only.
    shift : Shift, optional
    profile : Profile, optional
        Training mean and std for the shift (default: the drawn rows' own).
    source : {"generator", "data"}, optional
        The lab's generator (fresh draws from the lab's population; the
        default for the lab's contract), or rows resampled from the training
        split of the home's ``data/processed.csv`` (the default otherwise).
    home : Home or path, optional
        Only for ``source="data"``.
    contract : Contract, optional
        Default the lab's.
    entry : dict, optional
        The model's registry entry: how it split its data (for ``source="data"``).

    Returns
    -------
    pandas.DataFrame
        The id columns (from data), then the features; integers as int64, booleans as bool, categories as
        text, missing values as None.

    Examples
    --------
    >>> draw(3, seed=1).shape
    (3, 5)
    """
    c = contract or _contract.lab()
    source = _check_draw(n_rows, c, source)
    shift = shift or Shift()
    shift.check(c)
    # a seed of its own, so that simulated traffic never replays the training draws
    sub_seed = int(np.random.SeedSequence([int(seed), 0x5117]).generate_state(1)[0])
    rng = np.random.default_rng([int(seed), 0x5117, 1])
    names = list(c.feature_names)
    if source == "generator":
        base = data.generate(int(n_rows), seed=sub_seed)[names]
    else:
        frame = _training_rows(home, c, entry)
        if frame.empty:
            raise InvalidParameter(f"{Home.resolve(home).processed_csv} has no rows to resample", name="source")
        base = frame.iloc[rng.integers(0, len(frame), size=int(n_rows))].reset_index(drop=True)
    out = pd.DataFrame({name: _objects(base[name]) for name in c.id if name in base.columns})
    _put_features(out, base, c, shift, profile)
    for name, shares in shift.mix.items():
        out[name] = _mixed(c.feature(name), shares, int(n_rows), rng)
    return out[[*(n for n in c.id if n in out.columns), *names]]


def _check_draw(n_rows: int, contract: _contract.Contract, source: str | None) -> str:
    """The source to draw from, once ``n_rows`` and ``source`` are checked against the contract."""
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise InvalidParameter(f"n_rows must be a positive integer, got {n_rows!r}", name="n_rows")
    source = source or ("generator" if contract.source.is_generator else "data")
    if source not in SOURCES:
        raise InvalidParameter(f"source={source!r}: use one of {', '.join(SOURCES)}", name="source")
    if source == "generator" and not _contract.is_lab(contract):
        raise InvalidParameter("the generator draws the lab's data; this model's contract is "
                               f"{contract.name!r}: use --source data (rows resampled from its training split)",
                               name="source")
    return source


def _objects(column: pd.Series) -> np.ndarray:
    """A column as Python objects, None where a value is missing."""
    return column.astype(object).where(column.notna(), None).to_numpy(dtype=object)


def _put_features(out: pd.DataFrame, base: pd.DataFrame, contract: _contract.Contract, shift: Shift,
                  profile: drift.Profile | None) -> None:
    """Each feature of ``base`` into ``out``: numbers shifted and scaled, clipped to the valid range and typed."""
    numeric = [f.name for f in contract.features if f.type in (_contract.INTEGER, _contract.FLOAT)]
    moments = _moments(base, numeric, profile)
    for f in contract.features:
        column = base[f.name]
        if f.type in (_contract.INTEGER, _contract.FLOAT):
            x = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            mean, std = moments[f.name]
            if f.name in shift.scale:
                x = mean + (x - mean) * float(shift.scale[f.name])
            if f.name in shift.mean:
                x = x + float(shift.mean[f.name]) * std
            x = np.clip(x, f.low if f.low is not None else -np.inf, f.high if f.high is not None else np.inf)
            out[f.name] = _typed(np.rint(x) if f.type == _contract.INTEGER else np.round(x, 2),
                                 int if f.type == _contract.INTEGER else float)
        elif f.type == _contract.BOOLEAN:
            out[f.name] = _typed(pd.to_numeric(column, errors="coerce").to_numpy(dtype=float), bool)
        else:
            out[f.name] = _objects(column)


def _mixed(feature: _contract.Feature, shares: Mapping[str, float], n_rows: int, rng: np.random.Generator
           ) -> np.ndarray:
    """``n_rows`` values of a categorical (or boolean) feature drawn with ``shares``."""
    cats = list(shares)
    p = np.array([float(shares[k]) for k in cats])
    drawn = np.asarray(cats, dtype=object)[rng.choice(len(cats), size=n_rows, p=p / p.sum())]
    if feature.type == _contract.BOOLEAN:
        drawn = np.array([v == "true" for v in drawn], dtype=object)
    return drawn


def _typed(x: np.ndarray, kind: type) -> np.ndarray:
    """``x`` as int64 / float64 / bool, or, when values are missing, objects with None for them."""
    missing = ~np.isfinite(x)
    if not missing.any():
        return x.astype({int: np.int64, float: np.float64, bool: bool}[kind])
    return np.array([None if m else kind(v) for v, m in zip(x.tolist(), missing.tolist())], dtype=object)


@dataclass
class SimulateResult:
    """What a simulation did: where the rows went and how many arrived."""

    n_rows: int
    mode: str                 # log | http
    target: str               # the log file or the service URL
    seed: int
    source: str
    shift: dict[str, Any]
    version: str | None = None
    model_file: str | None = None
    delivered: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        what = "wrote" if self.mode == "log" else "sent"
        shift = {k: v for k, v in self.shift.items() if v}
        return (f"{what} {self.delivered} of {self.n_rows} simulated requests "
                f"({'shift ' + json.dumps(shift) if shift else 'training distribution'}, seed {self.seed}) "
                f"to {self.target}" + (f" scored by {self.version}" if self.version else "")
                + (f"; {self.failed} failed {self.statuses}" if self.failed else "")
                + f" in {self.seconds:.2f} s")


def _check_loopback(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise InvalidParameter(f"url={url!r}: the simulator only sends to a service on this machine "
                               "(http://127.0.0.1:PORT, http://localhost:PORT or http://[::1]:PORT)", name="url")
    return url.rstrip("/")


def _rows_as_requests(rows: pd.DataFrame, seed: int) -> list[dict[str, Any]]:
    """Each row as an API request body (Python values, None for missing), with a request id."""
    records = rows.to_dict(orient="records")
    for i, r in enumerate(records):
        for name, value in r.items():
            if isinstance(value, np.generic):
                r[name] = value.item()
        r["request_id"] = f"sim-{seed}-{i}"
    return records


def _send(url: str, requests: list[dict[str, Any]], result: SimulateResult, timeout: float) -> None:
    statuses: Counter = Counter()
    for body in requests:
        req = urllib.request.Request(url + "/predict", data=json.dumps(body).encode("utf-8"),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                statuses[str(resp.status)] += 1
        except urllib.error.HTTPError as exc:
            statuses[str(exc.code)] += 1
        except (urllib.error.URLError, OSError) as exc:
            if not statuses:  # nothing got through: the service is not there
                raise ChurnError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}; start the service "
                                 "or check --url") from None
            statuses["no answer"] += 1
    result.statuses = dict(statuses)
    result.delivered = statuses.get("200", 0)
    result.failed = len(requests) - result.delivered


def _scorer(model: str, home: Home) -> scoring.Scorer:
    try:
        return scoring.load(None if model == "current" else model, home=home)
    except NoCurrentModel:
        raise NoCurrentModel("no model is current, so there are no real scores to log: train one, pass "
                             "--model VERSION, or send to a running service with --url") from None


def simulate(n_rows: int = 200, *, home: Home | str | None = None, seed: int = 0, shift: Shift | None = None,
             model: str = "current", url: str | None = None, source: str | None = None,
             start_ts: float | None = None, interval_s: float = 0.0, timeout: float = 5.0) -> SimulateResult:
    """Write (or send) ``n_rows`` simulated prediction requests.

    Parameters
    ----------
    n_rows : int, default=200
    home : Home or path, optional
    seed : int, default=0
    shift : Shift, optional
        None: the training distribution.
    model : str, default="current"
        The model whose real scores are logged (and whose training std units
        the shift uses): ``current`` or a version label / model file.
    url : str, optional
        Send to ``<url>/predict`` (loopback only) instead of writing the log;
        the service scores and logs the rows itself.
    source : {"generator", "data"}, optional
        Default: the generator for the lab's contract, else rows of the model's training split.
    start_ts : float, optional
        Unix time of the first written row (default now).
    interval_s : float, default=0.0
        Seconds between written rows (0: one timestamp for all, as a batch).
    timeout : float, default=5.0
        Seconds to wait for each HTTP answer.

    Returns
    -------
    SimulateResult
    """
    home = Home.resolve(home)
    shift = shift or Shift()
    start = time.perf_counter()
    base_url = _check_loopback(url) if url is not None else None
    scorer = _scorer(model, home) if base_url is None else None
    entry = scorer.entry if scorer is not None else _entry(model, home)
    profile = _profile(entry, home) if entry is not None and not shift.is_null else None
    contract = registry.load_contract(entry, home=home) if entry is not None else _contract.load(home)
    rows = draw(n_rows, seed=seed, shift=shift, profile=profile, source=source, home=home, contract=contract,
                entry=entry)
    source = source or ("generator" if contract.source.is_generator else "data")
    requests = _rows_as_requests(rows, seed)
    if base_url is not None:
        result = SimulateResult(n_rows, "http", base_url + "/predict", seed, source, shift.to_dict())
        _send(base_url, requests, result, timeout)
    else:
        result = SimulateResult(n_rows, "log", str(home.predictions_log), seed, source, shift.to_dict(),
                                scorer.version, scorer.model_file)
        result.delivered = _write_log(rows, requests, scorer, contract, home, start_ts=start_ts,
                                      interval_s=interval_s)
    result.seconds = round(time.perf_counter() - start, 3)
    log.info("%s", result.summary())
    return result


def _entry(model: str, home: Home) -> dict[str, Any] | None:
    """The registry entry of ``model`` (``current`` or a version), None when there is none."""
    try:
        return registry.current_entry(home=home) if model == "current" else registry.get(model, home=home)
    except RegistryError:
        return None


def _profile(entry: Mapping[str, Any], home: Home) -> drift.Profile | None:
    """The model's training profile, whose std units a shift uses (None: the drawn rows' own)."""
    try:
        return drift.load_profile(entry, home=home)
    except RegistryError as exc:
        log.warning("shift in units of the drawn rows' own std: %s", exc)
        return None


def _write_log(rows: pd.DataFrame, requests: list[dict[str, Any]], scorer: scoring.Scorer,
               contract: _contract.Contract, home: Home, *, start_ts: float | None, interval_s: float) -> int:
    """Score ``rows`` and append them to the prediction log as the API logs them; returns the rows written."""
    t0 = time.perf_counter()
    proba = scorer.predict_proba(rows)
    latency_ms = round((time.perf_counter() - t0) * 1000.0 / len(rows), 3)
    ts0 = time.time() if start_ts is None else float(start_ts)
    records = []
    for i, (req, p) in enumerate(zip(requests, proba.tolist())):
        request_id = req.pop("request_id")
        ids = {n: req.pop(n) for n in contract.id if n in req} or None
        records.append(predlog.record(request_id=request_id, model_file=scorer.model_file,
                                      version=scorer.version, threshold=scorer.threshold, probability=p,
                                      features=req, latency_ms=latency_ms, ts=round(ts0 + i * interval_s, 3),
                                      ids=ids))
    home.logs_dir.mkdir(parents=True, exist_ok=True)
    try:
        for i in range(0, len(records), WRITE_BATCH):
            predlog.append_many(records[i:i + WRITE_BATCH], path=home.predictions_log)
    except OSError as exc:
        raise ChurnError(f"cannot write {home.predictions_log}: {exc.strerror or exc}") from None
    return len(records)
