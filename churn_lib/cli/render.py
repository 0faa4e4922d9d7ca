"""Text views of results for the ``churn`` command (``--json`` prints the results' dicts instead)."""

from __future__ import annotations

from typing import Any


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    import pandas as pd  # here: a command with nothing to show does not pay for pandas

    frame = pd.DataFrame(rows).reindex(columns=columns)
    return frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}")


def text_table(rows: list[dict[str, str]], columns: list[str]) -> str:
    """:func:`table` of rows whose every value is text, without pandas (as ``DataFrame.to_string(index=False)``
    prints them: each column right-aligned to its widest cell, one space between columns)."""
    if not rows:
        return "(none)"
    cells = [columns] + [[row[c] for c in columns] for row in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(columns))]
    return "\n".join(" ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells)


def entry_row(e: dict[str, Any], current: str | None) -> dict[str, Any]:
    m = e.get("metrics", {})
    return {"current": "*" if e["model_file"] == current else "", "version": e["version"],
            "trained_at_utc": e.get("trained_at_utc", "")[:19], "contract": e.get("contract_name", "lab"),
            "model": e.get("model_family", "logreg"),
            "f1": m.get("f1"), "roc_auc": m.get("roc_auc"), "threshold": e.get("threshold", 0.5),
            "gate": "passed" if e.get("passed_gate") else "refused", "model_file": e["model_file"]}


def gate(entry: dict[str, Any]) -> str:
    rows = [{"criterion": c["name"], "verdict": "pass" if c["passed"] else "FAIL", "reason": c["reason"]}
            for c in entry.get("gate", {}).get("criteria", [])]
    return table(rows, ["criterion", "verdict", "reason"])


def quality(report: dict[str, Any]) -> str:
    rows = [{"check": c["name"], "column": c["column"] or "", "verdict": c["verdict"], "detail": c["detail"]}
            for c in report["checks"] if c["verdict"] != "PASS"]
    head = (f"quality checks {'passed' if report['passed'] else 'FAILED'}: {report['rows_out']} of "
            f"{report['rows_in']} rows kept")
    changes = ", ".join(f"{k}: {v}" for k, v in report["changes"].items() if v)
    return "\n".join(filter(None, [head, f"cleaning changed {changes}" if changes else "",
                                   table(rows, ["check", "column", "verdict", "detail"]) if rows else
                                   "every check passed"]))


def trained(entry: dict[str, Any], promoted: bool) -> str:
    m, m5 = entry["metrics"], entry.get("metrics_at_0_5", {})
    verdict = ("passed the gate and is now current" if promoted else
               "passed the gate" if entry["passed_gate"] else "was REFUSED by the gate (registered, not current)")
    auc = m.get("roc_auc")
    return "\n".join([
        f"{entry['version']} ({entry['model_file']}) {verdict}",
        f"model {family(entry)}",
        f"threshold {entry['threshold']:.3g} ({entry['threshold_source']})",
        f"test F1 {m['f1']:.4f} at the threshold, {m5.get('f1', float('nan')):.4f} at 0.5; "
        f"ROC AUC {auc if auc is None else format(auc, '.4f')}; Brier {m['brier']:.4f}"
        + ("" if m.get("lift_top_decile") is None else f"; top-decile lift {m['lift_top_decile']:.2f}")
        + ("" if m.get("profit_per_1000") is None else f"; profit {m['profit_per_1000']:,.0f} per 1,000 customers"),
        gate(entry),
    ])


def family(entry: dict[str, Any]) -> str:
    """``lightgbm (n_estimators=400, ...; 212 trees), calibration sigmoid`` from a registry entry."""
    name = entry.get("model_family", "logreg")
    params = ", ".join(f"{k}={v}" for k, v in (entry.get("model_params") or {}).items())
    cal = (entry.get("calibration") or {}).get("method")
    return f"{name}" + (f" ({params})" if params else "") + (f", calibration {cal}" if cal else "")


def change(rec: dict[str, Any] | None, what: str) -> str:
    if rec is None:
        return f"{what} is already the current model; nothing changed"
    return f"current model: {rec['from'] or 'none'} -> {rec['to']} ({rec['reason']})"


def challenger_change(rec: dict[str, Any] | None, what: str | None) -> str:
    if rec is None:
        return (f"{what} is already the challenger at that sample; nothing changed" if what
                else "no challenger was set; nothing changed")
    if rec["to"] is None:
        return f"challenger: {rec['from']} -> none ({rec['reason']})"
    return f"challenger: {rec['from'] or 'none'} -> {rec['to']}, sample {rec['sample']:g} ({rec['reason']})"


def challenger_state(found: Any) -> str:
    if found is None:
        return "no challenger is set (`churn challenger VERSION [--sample FRACTION]` sets one)"
    sample = f"sample {found.sample:g}" + ("" if found.settled else " (its settings are missing: the default)")
    return f"challenger: {found.version or '?'} ({found.model_file}), {sample}, set {found.set_at or '?'}"


def drift(result: Any) -> str:
    lines = [result.summary()]
    for m in result.models:
        if not m.statistics:
            continue
        rows = [{"feature": s.feature, "statistic": s.name, "value": f"{s.value:.4g}",
                 "p_value": "-" if s.p_value is None else f"{s.p_value:.2g}", "alert": "ALERT" if s.alert else ""}
                for s in m.statistics]
        lines += ["", f"{m.version}: {m.n_rows} rows; each of {m.n_tests} tests at p < {m.alpha_per_test:.2g} "
                      f"(Bonferroni for a family-wise false-alarm rate of {result.thresholds['alpha']:g})",
                  text_table(rows, ["feature", "statistic", "value", "p_value", "alert"])]
    return "\n".join(lines)


def performance(result: Any) -> str:
    """The verdict per version, then realized and estimated metrics side by side (intervals where computed)."""
    def cell(part: dict | None, interval: dict | None, key: str) -> str:
        if not part or part.get(key) is None:
            return "-"
        text = f"{part[key]:.4f}" if key != "profit_per_1000" else f"{part[key]:,.0f}"
        iv = (interval or {}).get(key)
        return text + (f" [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "")

    read = result.read
    lines = [f"performance: {result.verdict.upper()} ({read['predictions']:,} prediction(s) in the window, "
             f"{read['with_outcome']:,} with an outcome; {read['outcomes']:,} outcome(s) on record"
             + (f", {read['repeated_outcomes']:,} repeated (the last counts)" if read["repeated_outcomes"] else "")
             + (f", {read['feedback_lines_skipped']:,} bad line(s) skipped" if read["feedback_lines_skipped"] else "")
             + ")"]
    for m in result.models:
        lines += ["", f"{m.version}: {m.verdict} - {m.reason}"]
        rows = [{"metric": key,
                 "realized": cell(m.realized, m.realized_interval, key),
                 "estimated (CBPE)": cell(m.estimated, m.estimated_interval, key)}
                for key in ("rows", "churn_rate", "roc_auc", "f1", "precision", "recall", "brier", "profit_per_1000")
                if key != "rows"]
        rows.insert(0, {"metric": "rows", "realized": f"{m.with_outcome:,}",
                        "estimated (CBPE)": f"{m.predictions - m.with_outcome:,}"})
        lines.append(table(rows, ["metric", "realized", "estimated (CBPE)"]))
    if result.models and any(m.estimated for m in result.models):
        lines.append("estimated: what the served probabilities imply if they are calibrated (see the version's "
                     "reliability diagram)")
    return "\n".join(lines)


def _number(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{digits}f}"


def comparison(result: Any) -> str:
    """The verdict, what the pairs show, then each model's metrics and the paired differences."""
    r = result.read
    lines = [result.summary(),
             f"pairs: {result.pairs:,} ({result.labelled:,} with an outcome, {result.positives:,} churner(s)); "
             f"left out: {r.get('champion_without_challenger', 0):,} champion line(s) without a challenger line, "
             f"{r.get('challenger_without_champion', 0):,} challenger line(s) without a champion line, "
             f"{r.get('duplicate_request_ids', 0):,} duplicated request id(s)",
             f"decisions agree on {_number(result.agreement)} of the pairs; score correlation "
             f"{_number(result.score_correlation)}; PSI {_number(result.psi)}"]
    rows = []
    for role, m in result.models.items():
        lat = m["latency_ms"]
        rows.append({"role": role, "version": m["version"], "objective": m["threshold_metric"],
                     "positive_rate": m["positive_rate"],
                     "latency_ms mean/p50/p95": "/".join(_number(lat[k], 2) for k in ("mean", "p50", "p95"))})
    lines += ["", table(rows, ["role", "version", "objective", "positive_rate", "latency_ms mean/p50/p95"])]
    metrics = []
    for key in ("roc_auc", "f1", "brier", "profit_per_1000"):
        row = {"metric": key}
        for part, figures in (("realized", result.realized), ("estimated", result.estimated)):
            for role in ("champion", "challenger"):
                row[f"{part} {role}"] = _number(((figures or {}).get(role) or {}).get(key))
        diff = (result.differences or {}).get(key)
        p = "-" if not diff else (f"p<{1 / result.differences['draws']:.2g}" if diff["p_value"] == 0
                                  else f"p={diff['p_value']:.3g}")
        row["difference [interval] p"] = "-" if not diff else (
            f"[{diff['interval'][0]:+.4f}, {diff['interval'][1]:+.4f}] {p}")
        metrics.append(row)
    lines += ["", table(metrics, list(metrics[0]))]
    if result.mcnemar:
        t = result.mcnemar
        lines.append(f"McNemar ({t['method']}): champion alone right {t['champion_only']:,}, challenger alone right "
                     f"{t['challenger_only']:,}, p = {t['p_value']:.3g}")
    if result.estimated:
        lines.append("estimated: CBPE on the pairs without an outcome, if the served probabilities are calibrated")
    return "\n".join(lines)


def init(result: Any) -> str:
    lines = [result.summary()]
    if result.inferred is not None:
        frame = result.inferred.table()
        lines.append(frame.to_string(index=False, max_colwidth=70))
    return "\n".join(lines)
