"""The lab's step 4: logistic regression, F1 gate, versioned model, registry entry."""
import json
import os
from datetime import datetime, timezone

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

df = pd.read_csv("data/processed.csv", keep_default_na=False, na_values=[""])
X, y = df.drop(columns="churn"), df["churn"]
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=42)
pipe = Pipeline([("pre", ColumnTransformer([
    ("num", StandardScaler(), ["tenure_months", "num_complaints", "avg_session_minutes"]),
    ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan_type", "region"])])),
    ("clf", LogisticRegression(max_iter=200, random_state=42))])
pipe.fit(X_tr, y_tr)
pred = pipe.predict(X_te)
metrics = {"accuracy": accuracy_score(y_te, pred), "precision": precision_score(y_te, pred),
           "recall": recall_score(y_te, pred), "f1": f1_score(y_te, pred)}
stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
name = f"churn_model_v1_{stamp}.joblib"
joblib.dump(pipe, os.path.join("models", name))
passed = metrics["f1"] >= 0.70
meta = [{"model_file": name, "version": "v1", "trained_at_utc": stamp, "data_file": "data/processed.csv",
         "seed": 42, "metrics": metrics, "gate_f1": 0.70, "passed_gate": passed}]
json.dump(meta, open("registry/metadata.json", "w"), indent=2)
if passed:
    open("registry/current_model.txt", "w").write(name)
print(metrics)
