"""The attrs a sample frame carries."""

from __future__ import annotations

import pandas as pd
import pytest

from mvnb.timing import sample_attrs


def test_sample_attrs() -> None:
    a = sample_attrs(
        "gdb-python", "lapic_cal_handler", provenance={"qemu": "7.2.0", "kernel": "6.1.0"}, count=27
    )
    assert a == {
        "method": "gdb-python",
        "location": "lapic_cal_handler",
        "interrupted": False,
        "stops": True,
        "host_time": "host_ns",
        "provenance": {"qemu": "7.2.0", "kernel": "6.1.0"},
        "count": 27,
    }
    f = pd.DataFrame({"x": [1]})
    f.attrs.update(a)
    assert f.copy().attrs["method"] == "gdb-python"
    with pytest.raises(ValueError, match="method"):
        sample_attrs("magic", "x")
    with pytest.raises(ValueError, match="location"):
        sample_attrs("periodic", "x")
