"""arith.mul: the exact product, on machine words where that is safe (compiled) or not."""

from __future__ import annotations

from hypothesis import example, given, strategies as st

from clearway.domain.arith import mul

_SIDES = st.one_of(st.integers(-2**31, 2**31), st.integers(-2**64, 2**64), st.integers(-10**40, 10**40),
                   st.integers(-10**400, 10**400))


@given(_SIDES, _SIDES)
@example(2**31, 2**31)  # 2⁶²: just past the machine-word test's bound
@example(-2**31, 2**31)
@example(3_037_000_499, 3_037_000_499)  # ~2⁶³ − 2·10⁹: fits in 64 bits, not under the 4·10¹⁸ test
@example(3_037_000_500, 3_037_000_500)  # past 2⁶³ − 1
@example(-(2**63), 1)
@example(60_000_000_000, 66_666_666)  # 4.0·10¹⁸: on the bound
@example(0, -(10**40))
@example(10**400, 0)  # no float of it: the factor bound decides first
def test_mul_is_the_exact_product(a, b):
    assert mul(a, b) == a * b
    assert type(mul(a, b)) is int
