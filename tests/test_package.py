import pickle

import pytest

import churn_lib
from churn_lib import exceptions
from churn_lib.quality import QualityReport


def test_all_is_explicit_and_complete():
    public = {n for n in dir(churn_lib) if not n.startswith("_") and not isinstance(getattr(churn_lib, n),
                                                                                    type(churn_lib))}
    assert set(churn_lib.__all__) - {"__version__"} == public
    assert set(exceptions.__all__) <= set(churn_lib.__all__)


@pytest.mark.parametrize("name", exceptions.__all__)
def test_every_exception_pickles_with_its_data(name):
    cls = getattr(exceptions, name)
    err = cls("something went wrong", version="v3", report=QualityReport(rows_in=5))
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == "something went wrong"
    assert back.version == "v3" and back.report.rows_in == 5
    assert isinstance(back, exceptions.ChurnError)
