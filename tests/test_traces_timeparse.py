"""The vectorised timestamp parser agrees with polars' str.to_datetime and rejects malformed rows."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.traces._timeparse import iso_to_ns

STAMPS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31))


@settings(max_examples=25, deadline=None)
@given(
    stamps=st.lists(STAMPS, min_size=1, max_size=40), digits=st.integers(0, 9), sep=st.sampled_from([" ", "T"])
)
def test_matches_polars(stamps, digits, sep):
    ns_extra = [(s.microsecond * 1000 + 123) % 10**9 for s in stamps]
    text = []
    for s, ns in zip(stamps, ns_extra, strict=True):
        frac = f"{ns:09d}"[:digits]
        text.append(s.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{frac}" if digits else ""))
    series = pl.Series(text)
    expected = series.str.to_datetime("%Y-%m-%d" + sep + "%H:%M:%S%.f" if digits else None, time_unit="ns")
    assert iso_to_ns(series).to_list() == expected.dt.epoch("ns").to_list()


def test_mixed_widths_and_malformed_rows():
    series = pl.Series(
        [
            "2023-11-16 18:17:03.9799600",
            "2023-11-16 18:17:04.5",
            "2023-11-16 18:17:05",
            "2023-11-16 24:00:00.0000000",
            "2023-13-01 00:00:00.0000000",
            "2023-11-16 18:17:0x.0000000",
            "2023/11/16 18:17:05.0000000",
            "2023-11-16 18:17:05.1234567890",
            None,
            "",
        ]
    )
    out = iso_to_ns(series).to_list()
    t0 = int((datetime(2023, 11, 16, 18, 17, 3) - datetime(1970, 1, 1)) / timedelta(microseconds=1)) * 1000
    assert out[:3] == [t0 + 979_960_000, t0 + 1_500_000_000, t0 + 2_000_000_000]
    assert out[3:] == [None] * 7
