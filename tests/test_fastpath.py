"""The vectorised fast paths agree with phonenumbers and email-validator wherever they decide."""

from __future__ import annotations

import random

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from mdpipe.validate import email_verdict, fast_email_verdicts, fast_phone_verdicts, phone_verdict

CODES = sorted(str(c) for c in COUNTRY_CODE_TO_REGION_CODE)
library_phone = phone_verdict(None)


def assert_agrees(fast, library, values: list[str]) -> int:
    """Where `fast` decides a value, the library agrees; returns how many values it decided."""
    cells = pl.Series(values, dtype=pl.String).unique()
    verdicts = fast(cells)
    assert verdicts.height == cells.len()  # aligned with the cells
    decided = verdicts.with_columns(cells.alias("value")).filter("decided")
    for normalised, problem, _, value in decided.iter_rows():
        expected, why = library(value)
        assert normalised == expected, (value, normalised, expected, why)
        assert (problem is None) == (why is None), (value, problem, why)
    assert verdicts.filter(~pl.col("decided")).null_count().sum_horizontal().item() == 2 * (
        verdicts.height - decided.height
    )  # an undecided value has no verdict of the fast path's
    return decided.height


def test_phone_fast_path_agrees_for_every_country_code_and_length():
    rng = random.Random(20261203)
    numbers = []
    for code in CODES:
        for length in range(0, 16 - len(code)):
            for _ in range(6):
                numbers.append(
                    "+" + code + "".join(rng.choice("0123456789") for _ in range(length))
                )
    decided = assert_agrees(fast_phone_verdicts, library_phone, numbers)
    assert decided > len(numbers) * 0.8  # the fast path really decides most numbers


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(CODES).flatmap(lambda code: st.from_regex(rf"\A\+{code}[0-9]{{0,13}}\Z")),
        min_size=1,
        max_size=50,
    )
)
def test_phone_fast_path_agrees_on_generated_numbers(numbers):
    assert_agrees(fast_phone_verdicts, library_phone, numbers)


LOCAL = st.from_regex(r"\A[A-Za-z0-9_%+.\-!#'*/=?^`{|}~\"]{1,70}\Z")
LABEL = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9\-]{1,64}\Z"),
    st.sampled_from(
        [
            "xn--bcher-kva",
            "ab--cd",
            "localhost",
            "test",
            "invalid",
            "local",
            "onion",
            "arpa",
            "example",
        ]
    ),
)
TLD = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9\-]{1,10}\Z"),
    st.sampled_from(["com", "ORG", "test", "arpa", "local", "123"]),
)
ADDRESS = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
    LOCAL,
    st.lists(LABEL, min_size=0, max_size=4),
    TLD,
)


@settings(max_examples=500, deadline=None)
@given(st.lists(ADDRESS, min_size=1, max_size=30))
def test_email_fast_path_agrees_on_generated_addresses(addresses):
    assert_agrees(fast_email_verdicts, email_verdict, addresses)


def test_email_fast_path_decides_ordinary_addresses():
    ordinary = ["Ann.Lee+news@Example.COM", "bob_99@mail.example.co.uk", "x-y@a1-b2.io"]
    assert assert_agrees(fast_email_verdicts, email_verdict, ordinary) == 3
    long_local = "a" * 65 + "@example.com"
    assert assert_agrees(fast_email_verdicts, email_verdict, [long_local, "a@b.test"]) == 0
