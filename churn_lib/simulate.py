"""Traffic simulator: prediction requests drawn from the training distribution,
or with a chosen shift, written to the prediction log or sent to a running
service; for demos of drift monitoring and for its tests.

Rows come from the lab's generator (the population the training data was
drawn from, with a seed of their own) or are resampled from
``data/processed.csv``. A :class:`Shift` then moves a numeric feature's mean
(in training standard deviations), scales its spread around the training
mean, or redraws a categorical feature with other shares. Values are clipped
to the schema's valid ranges and integers stay integers, so every row is a
request the API accepts.

Written rows carry the real scores of a registered model (its threshold,
file name and label, as the API logs them) through :func:`churn_lib.predlog.append_many`.
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

from . import data, drift, predlog, registry, schema, scoring
from .exceptions import ChurnError, InvalidParameter, NoCurrentModel, RegistryError
from .home import Home

log = logging.getLogger(__name__)

SOURCES = ("generator", "data")
#: Rows appended per write (each write lands whole: see :func:`churn_lib.predlog.write_lines`).
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
        (normalised; categories outside the schema are allowed, to simulate unseen ones).

    Examples
    --------
    >>> Shift(mean={"tenure_months": 1.0}).is_null
    False
    """

    mean: Mapping[str, float] = field(default_factory=dict)
    scale: Mapping[str, float] = field(default_factory=dict)
    mix: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, values in (("mean", self.mean), ("scale", self.scale)):
            for name, v in values.items():
                if name not in schema.NUMERIC:
                    raise InvalidParameter(f"{kind} shift of {name!r}: not a numeric feature "
                                           f"({', '.join(schema.NUMERIC)})", name=kind)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                    raise InvalidParameter(f"{kind} shift of {name} must be a number, got {v!r}", name=kind)
                if kind == "scale" and v <= 0:
                    raise InvalidParameter(f"scale of {name} must be positive, got {v!r}", name=kind)
        for name, shares in self.mix.items():
            if name not in schema.CATEGORICAL:
                raise InvalidParameter(f"mix of {name!r}: not a categorical feature "
                                       f"({', '.join(schema.CATEGORICAL)})", name="mix")
            values = list(shares.values())
            if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in values) \
                    or sum(values) <= 0:
                raise InvalidParameter(f"mix of {name} needs non-negative shares with a positive sum, "
                                       f"got {dict(shares)!r}", name="mix")

    @property
    def is_null(self) -> bool:
        return not (self.mean or self.scale or self.mix)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": dict(self.mean), "scale": dict(self.scale), "mix": {k: dict(v) for k, v in self.mix.items()}}


def _moments(base: pd.DataFrame, profile: drift.Profile | None) -> dict[str, tuple[float, float]]:
    if profile is not None:
        return {n: (r.mean, r.std) for n, r in profile.numeric.items()}
    return {n: (float(base[n].mean()), float(base[n].std(ddof=1)) or 1.0) for n in schema.NUMERIC}


def draw(n_rows: int, *, seed: int = 0, shift: Shift | None = None, profile: drift.Profile | None = None,
         source: str = "generator", home: Home | str | None = None) -> pd.DataFrame:
    """Draw ``n_rows`` request rows (the five features), optionally shifted.

    Parameters
    ----------
    n_rows : int
    seed : int, default=0
        Seeds local generators only.
    shift : Shift, optional
    profile : Profile, optional
        Training mean and std for the shift (default: the drawn rows' own).
    source : {"generator", "data"}, default="generator"
        The lab's generator (fresh draws from the training population), or
        rows resampled from the home's ``data/processed.csv``.
    home : Home or path, optional
        Only for ``source="data"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``schema.FEATURES``; integer features as int64, categories as str.

    Examples
    --------
    >>> draw(3, seed=1).shape
    (3, 5)
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise InvalidParameter(f"n_rows must be a positive integer, got {n_rows!r}", name="n_rows")
    if source not in SOURCES:
        raise InvalidParameter(f"source={source!r}: use one of {', '.join(SOURCES)}", name="source")
    shift = shift or Shift()
    # a seed of its own, so that simulated traffic never replays the training draws
    sub_seed = int(np.random.SeedSequence([int(seed), 0x5117]).generate_state(1)[0])
    rng = np.random.default_rng([int(seed), 0x5117, 1])
    if source == "generator":
        base = data.generate(int(n_rows), seed=sub_seed)[list(schema.FEATURES)]
    else:
        frame = data.read_csv(Home.resolve(home).processed_csv)[list(schema.FEATURES)].dropna()
        base = frame.iloc[rng.integers(0, len(frame), size=int(n_rows))].reset_index(drop=True)
    out = pd.DataFrame({c: base[c].astype(str).to_numpy(dtype=object) for c in schema.CATEGORICAL})
    moments = _moments(base, profile)
    for name in schema.NUMERIC:
        x = base[name].to_numpy(dtype=float)
        mean, std = moments[name]
        if name in shift.scale:
            x = mean + (x - mean) * float(shift.scale[name])
        if name in shift.mean:
            x = x + float(shift.mean[name]) * std
        rng_ = schema.RANGES[name]
        x = np.clip(x, rng_.low, rng_.high)
        out[name] = np.rint(x).astype(np.int64) if name in schema.INTEGER else np.round(x, 2)
    for name, shares in shift.mix.items():
        cats = list(shares)
        p = np.array([float(shares[c]) for c in cats])
        out[name] = np.asarray(cats, dtype=object)[rng.choice(len(cats), size=int(n_rows), p=p / p.sum())]
    return out[list(schema.FEATURES)]


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
    records = rows.to_dict(orient="records")
    for i, r in enumerate(records):
        for name in schema.INTEGER:
            r[name] = int(r[name])
        for name in schema.NUMERIC:
            if name not in schema.INTEGER:
                r[name] = float(r[name])
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
             model: str = "current", url: str | None = None, source: str = "generator",
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
    source : {"generator", "data"}, default="generator"
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
    scorer, profile = None, None
    if base_url is None:
        scorer = _scorer(model, home)
        entry = scorer.entry
    else:
        try:
            entry = registry.current_entry(home=home) if model == "current" else registry.get(model, home=home)
        except RegistryError:
            entry = None
    if entry is not None and not shift.is_null:
        try:
            profile = drift.load_profile(entry, home=home)
        except RegistryError as exc:
            log.warning("shift in units of the drawn rows' own std: %s", exc)
    rows = draw(n_rows, seed=seed, shift=shift, profile=profile, source=source, home=home)
    requests = _rows_as_requests(rows, seed)
    if base_url is not None:
        result = SimulateResult(n_rows, "http", base_url + "/predict", seed, source, shift.to_dict())
        _send(base_url, requests, result, timeout)
    else:
        result = SimulateResult(n_rows, "log", str(home.predictions_log), seed, source, shift.to_dict(),
                                scorer.version, scorer.model_file)
        t0 = time.perf_counter()
        proba = scorer.predict_proba(rows)
        latency_ms = round((time.perf_counter() - t0) * 1000.0 / len(rows), 3)
        ts0 = time.time() if start_ts is None else float(start_ts)
        threshold = scorer.threshold
        records = []
        for i, (req, p) in enumerate(zip(requests, proba.tolist())):
            request_id = req.pop("request_id")
            records.append({"request_id": request_id, "model_version": scorer.model_file,
                            "prediction": int(p >= threshold), "probability": round(p, 6),
                            "latency_ms": latency_ms, "features": req, "ts": round(ts0 + i * interval_s, 3),
                            "threshold": threshold, "version": scorer.version})
        home.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            for i in range(0, len(records), WRITE_BATCH):
                predlog.append_many(records[i:i + WRITE_BATCH], path=home.predictions_log)
        except OSError as exc:
            raise ChurnError(f"cannot write {home.predictions_log}: {exc.strerror or exc}") from None
        result.delivered = len(records)
    result.seconds = round(time.perf_counter() - start, 3)
    log.info("%s", result.summary())
    return result
