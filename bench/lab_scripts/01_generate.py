"""The lab's step 2: a synthetic churn data set -> data/raw.csv (n=1200, seed=42)."""
import os

import numpy as np
import pandas as pd

os.makedirs("data", exist_ok=True)
os.makedirs("models", exist_ok=True)
os.makedirs("registry", exist_ok=True)
rng = np.random.default_rng(42)
n = 1200
tenure = rng.integers(1, 60, size=n)
complaints = rng.poisson(1.2, size=n)
session = np.clip(rng.normal(35, 12, size=n), 1, 120)
plan = rng.choice(["basic", "premium"], size=n, p=[0.72, 0.28])
region = rng.choice(["NA", "EU", "AF", "AS"], size=n, p=[0.25, 0.30, 0.25, 0.20])
logit = (1.2 + 0.55 * complaints - 0.03 * tenure - 0.02 * session - 0.35 * (plan == "premium")
         - 0.05 * (region == "EU") + 0.08 * (region == "AF"))
churn = rng.binomial(1, 1 / (1 + np.exp(-logit)))
pd.DataFrame({"tenure_months": tenure, "num_complaints": complaints, "avg_session_minutes": np.round(session, 2),
              "plan_type": plan, "region": region, "churn": churn}).to_csv("data/raw.csv", index=False)
print("wrote data/raw.csv")
