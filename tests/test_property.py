"""Property: any small churn table, through `churn init` and `churn run --direct`, ends in a model or in a
one-line error with its exit status, never in a traceback."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn_lib import cli, registry

KINDS = ("int", "float", "float_text_blanks", "bool_words", "bool01", "category", "constant", "text", "mostly_na")


@st.composite
def tables(draw):
    n = draw(st.sampled_from([30, 150, 250, 400]))
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=5))
    signal = np.zeros(n)
    columns = {}
    for k, kind in enumerate(kinds):
        name = f"c{k}_{kind}"
        if kind == "int":
            x = rng.integers(-5, 50, size=n)
            columns[name], signal = x, signal + 0.05 * x
        elif kind == "float":
            x = rng.normal(0, 1, size=n).round(3)
            columns[name], signal = x, signal + x
        elif kind == "float_text_blanks":
            x = rng.normal(10, 3, size=n).round(2).astype(object)
            x[rng.random(n) < draw(st.sampled_from([0.0, 0.02, 0.3, 0.7]))] = " "
            columns[name] = x
        elif kind == "bool_words":
            columns[name] = rng.choice(["Yes", "No"], size=n)
        elif kind == "bool01":
            columns[name] = rng.integers(0, 2, size=n)
        elif kind == "category":
            columns[name] = rng.choice(["a", "b", "c", "NA"][:draw(st.integers(2, 4))], size=n)
        elif kind == "constant":
            columns[name] = np.full(n, "same")
        elif kind == "text":
            columns[name] = [f"note {i} {rng.integers(1e9)}" for i in range(n)]
        else:
            x = rng.normal(size=n).round(2).astype(object)
            x[rng.random(n) < 0.8] = ""
            columns[name] = x
    labels = draw(st.sampled_from([("Yes", "No")] * 3 + [("1", "0")] * 2 + [("churned", "active")] * 2
                                  + [("a", "b", "c"), ("x",)]))
    p = 1 / (1 + np.exp(-(signal - signal.mean())))
    rate = draw(st.sampled_from([0.5, 0.5, 0.3, 0.01]))
    target = np.where(rng.random(n) < p * rate * 2, labels[0], labels[min(1, len(labels) - 1)])
    if len(labels) == 3:
        target[rng.random(n) < 0.2] = labels[2]
    columns["target"] = target
    return pd.DataFrame(columns)


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frame=tables())
def test_any_small_table_ends_in_a_model_or_a_clear_error(tmp_path_factory, frame):
    folder = tmp_path_factory.mktemp("prop")
    path = folder / "data.csv"
    frame.to_csv(path, index=False)
    home = folder / "home"
    for argv in (["init", "--home", str(home), "--data", str(path), "--target", "target"],
                 ["run", "--direct", "--home", str(home)]):
        code, err = _run(argv)
        assert code in (0, 1, 3), (argv, code, err)
        if code == 1:
            assert err.startswith("churn: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
            return
    entries = registry.load_entries(home=home)
    assert len(entries) == 1 and entries[0]["version"] == "v1"


def _run(argv):
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    return code, err.getvalue()
