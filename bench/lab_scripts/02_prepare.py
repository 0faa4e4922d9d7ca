"""The lab's step 3: clean + checks -> data/processed.csv, registry/train_stats.json."""
import json

import pandas as pd

df = pd.read_csv("data/raw.csv", keep_default_na=False, na_values=[""])
df["avg_session_minutes"] = df["avg_session_minutes"].clip(lower=0)
df["plan_type"] = df["plan_type"].astype(str).str.strip().str.lower()
df["region"] = df["region"].astype(str).str.strip().str.upper()
required = ["tenure_months", "num_complaints", "avg_session_minutes", "plan_type", "region", "churn"]
assert all(c in df.columns for c in required)
assert (df[required].isna().mean() <= 0.05).all()
df.to_csv("data/processed.csv", index=False)
stats = {c: {"mean": float(df[c].mean()), "std": float(df[c].std()) or 1.0}
         for c in ("tenure_months", "num_complaints", "avg_session_minutes")}
json.dump(stats, open("registry/train_stats.json", "w"), indent=2)
print("wrote data/processed.csv")
