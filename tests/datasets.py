"""Churn tables of other shapes than the lab's, built by the tests themselves (no download).

* :func:`telecom` - a wide telecom-like export (21 columns, as the public 7,043-row table has): a
  customer id, a ``Yes``/``No`` target, 16 categorical columns (some Yes/No), a 0/1 column, two
  integers/floats, and ``TotalCharges``, a number stored as text with blank cells (new customers);
* :func:`telecom_home` - a home over the telecom table with the contract ``churn init`` infers;
* :func:`flags_and_floats` - only boolean and float features (spelled ``true``/``false``,
  ``Y``/``N``), a float with missing values, the target ``churned``/``active``.

The churn labels come from a logistic model of the features, so a model has real signal to find.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def telecom(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    yes_no = np.array(["No", "Yes"])
    tenure = rng.integers(0, 73, size=n)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], size=n, p=[0.55, 0.21, 0.24])
    internet = rng.choice(["DSL", "Fiber optic", "No"], size=n, p=[0.34, 0.44, 0.22])
    phone = rng.random(n) < 0.9
    monthly = np.round(np.where(internet == "No", 20, np.where(internet == "DSL", 55, 80))
                       + rng.normal(0, 12, size=n) + 10 * phone, 2).clip(18.25, 118.75)
    total = np.round(monthly * tenure + rng.normal(0, 30, size=n).clip(0), 2)
    total_text = np.where(tenure == 0, " ", np.char.mod("%.2f", total))  # blanks, as the public export has
    senior = (rng.random(n) < 0.16).astype(int)

    def service(p_yes: float) -> np.ndarray:
        out = yes_no[(rng.random(n) < p_yes).astype(int)].astype(object)
        out[internet == "No"] = "No internet service"
        return out

    security, backup, protection, support = service(0.35), service(0.42), service(0.42), service(0.36)
    tv, movies = service(0.5), service(0.5)
    payment = rng.choice(["Electronic check", "Mailed check", "Bank transfer (automatic)",
                          "Credit card (automatic)"], size=n, p=[0.34, 0.23, 0.22, 0.21])
    paperless = yes_no[(rng.random(n) < 0.59).astype(int)]
    logit = (-1.2 - 0.045 * tenure + 1.3 * (contract == "Month-to-month") - 0.9 * (contract == "Two year")
             + 0.9 * (internet == "Fiber optic") - 0.5 * (internet == "No") + 0.012 * (monthly - 65)
             + 0.35 * senior - 0.45 * (security == "Yes") - 0.35 * (support == "Yes")
             + 0.45 * (payment == "Electronic check") + 0.3 * (paperless == "Yes"))
    churn = yes_no[(rng.random(n) < _sigmoid(logit)).astype(int)]
    multiple = yes_no[(rng.random(n) < 0.42).astype(int)].astype(object)
    multiple[~phone] = "No phone service"
    ids = np.char.add(np.char.add(rng.integers(1000, 9999, size=n).astype(str), "-"),
                      np.char.zfill(np.arange(n).astype(str), 7))  # unique, like 7590-0000042
    return pd.DataFrame({
        "customerID": ids,
        "gender": rng.choice(["Female", "Male"], size=n),
        "SeniorCitizen": senior,
        "Partner": yes_no[(rng.random(n) < 0.48).astype(int)],
        "Dependents": yes_no[(rng.random(n) < 0.3).astype(int)],
        "tenure": tenure,
        "PhoneService": yes_no[phone.astype(int)],
        "MultipleLines": multiple,
        "InternetService": internet,
        "OnlineSecurity": security,
        "OnlineBackup": backup,
        "DeviceProtection": protection,
        "TechSupport": support,
        "StreamingTV": tv,
        "StreamingMovies": movies,
        "Contract": contract,
        "PaperlessBilling": paperless,
        "PaymentMethod": payment,
        "MonthlyCharges": monthly,
        "TotalCharges": total_text,
        "Churn": churn,
    })


def flags_and_floats(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    active = rng.random(n) < 0.6
    discount = rng.random(n) < 0.3
    usage = rng.gamma(2.0, 3.0, size=n).round(3)
    spend = rng.normal(40, 15, size=n).round(2)
    latency = rng.normal(120, 30, size=n).round(1)
    logit = -0.4 - 1.1 * active + 0.8 * discount - 0.15 * (usage - 6) + 0.01 * (latency - 120)
    churned = rng.random(n) < _sigmoid(logit)
    spend_text = spend.astype(object)
    spend_text[rng.random(n) < 0.03] = ""  # a few gaps: the model fills them in
    return pd.DataFrame({
        "is_active": np.where(active, "true", "false"),
        "has_discount": np.where(discount, "Y", "N"),
        "usage_hours": usage,
        "monthly_spend": spend_text,
        "latency_ms": latency,
        "status": np.where(churned, "churned", "active"),
    })


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def telecom_home(root: Path, *, rows: int, seed: int) -> Path:
    """A home at ``root`` over :func:`telecom` (``rows``, ``seed``) written beside it, with the contract
    ``churn init`` infers (target ``Churn``, id ``customerID``); returns ``root``."""
    from churn_lib.data import infer

    source = write(telecom(rows, seed=seed), Path(root).parent / "in" / "telecom.csv")
    infer.init_home(root, data=source, target="Churn", ids=["customerID"])
    return Path(root)
