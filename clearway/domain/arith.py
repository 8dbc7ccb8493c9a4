"""Exact integer products for the compiled hot path (clearway/native.py).

mypyc keeps an ``int`` that fits in 63 bits in a machine word, but its multiplication
stays on machine words only when both factors are below 2³⁰ and non-negative
(``CPyTagged_IsMultiplyOverflow`` in mypyc's ``CPy.h``, a deliberately cheap test).
Money here is micro-USDC: a BTC mark price is ~6·10¹⁰, so every ``lots * price`` took
the general path — both factors boxed as Python ints, ``PyNumber_Multiply``, the result
unboxed — about 750 machine instructions a product (callgrind on the node benchmark's
command mix, where such products were a quarter of ``apply``'s instructions).

``mul`` decides with a float product whether the exact product fits in 62 bits, and if
so multiplies 64-bit machine integers (``mypy_extensions.i64``; run interpreted, ``i64``
is ``int``). The test is conservative: the float product is within a relative 2⁻⁵¹ of
the exact one, so a product accepted below 4·10¹⁸ is below 2⁶² and no 64-bit product
can overflow; anything else, of any size, takes Python's arbitrary-precision
multiplication. The result is always the exact integer product, of factors of any size
(the factors are bounded first, so the float conversion never overflows).
"""

from __future__ import annotations

import operator
import types
from typing import Final

from mypy_extensions import i64

_MACHINE_PRODUCT: Final = 4.0e18
"""Float products below this (in magnitude) are exact products below 2⁶² (≈ 4.61·10¹⁸).
Constants here are ``Final``: mypyc inlines them, where a plain module global is a
dictionary lookup on every use."""

_MACHINE_FACTOR: Final = 2_305_843_009_213_693_952
"""2⁶¹: factors below this (in magnitude) convert to i64 (a zero product says nothing of
the other factor). A literal that fits in mypyc's machine-word int (2⁶² does not, and
comparing with it took Python's slow path)."""


def mul(a: int, b: int) -> int:
    """a · b, exactly (see the module docstring for why this is not ``a * b``)."""
    if (-_MACHINE_FACTOR < a < _MACHINE_FACTOR and -_MACHINE_FACTOR < b < _MACHINE_FACTOR
            and abs(float(a) * float(b)) < _MACHINE_PRODUCT):
        return i64(a) * i64(b)
    return a * b


if isinstance(mul, types.FunctionType):
    # This module runs interpreted (CLEARWAY_PURE_PYTHON=1, or no C compiler at install):
    # there ``i64`` is a class whose call returns ``int``, so the detour above would make
    # every product several times slower, while Python's own multiply is exact and fast.
    # Modules bind ``mul`` when they import it, after this line. (Compiled, ``mul`` is a
    # builtin function and stays.)
    globals()["mul"] = operator.mul
