"""The lab's step 5: scan thresholds 0.10..0.90 for F1, show the registry."""
import json
import os

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

meta = json.load(open("registry/metadata.json"))
model = joblib.load(os.path.join("models", meta[-1]["model_file"]))
df = pd.read_csv("data/processed.csv", keep_default_na=False, na_values=[""])
X, y = df.drop(columns="churn"), df["churn"]
_, X_te, _, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=42)
proba = model.predict_proba(X_te)[:, 1]
best = max((f1_score(y_te, (proba >= t).astype(int)), t) for t in np.round(np.arange(0.10, 0.91, 0.01), 2))
print(f"best F1 {best[0]:.4f} at threshold {best[1]:.2f}")
print(pd.DataFrame(meta)[["version", "model_file", "passed_gate"]])
