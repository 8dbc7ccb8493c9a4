"""Standard margin: equity, initial and maintenance requirements, the pre-trade check.

Source: exchange-rules.md "Standard margin".

- Perpetuals (dYdX style): IM = ⌈|notional| · IMF⌉, MM = ⌈|notional| · MMF⌉ at the mark.
- Options, per short contract (Deribit / Derive standard): IM = mark + max(0.15·S − OTM,
  0.10·S), MM = mark + 0.075·S with S the index; long options need nothing and their value
  does not count as collateral in standard mode. Per expiry the sum is capped by the
  expiry's maximum settlement loss plus 1.4·S (IM) / 1.2·S (MM) per unpaired short call
  (the rule of ``risk.standard_options``, evaluated here exactly in integers because the
  pre-trade check cannot afford numpy per order; tests check both agree).
- Equity = cash · min(1, stable price) (positive cash only: a debt in USDC does not shrink
  when USDC depegs) + Σ perp size × mark + Σ short option size × mark (a liability)
  + Σ unsettled funding of the perps (``pending_funding``: the payment a settlement now
  would make, rounded against the account as ``units.funding_payment``; it is counted,
  not settled, so that a rejected command changes nothing — exchange-rules.md "Funding":
  funding is settled before every margin check; counting it exactly is the same check).
- Open orders count toward IM as if filled at their limit price. The unit is the
  perpetual instrument, or the (underlying, expiry) of options (the cap couples the
  expiry's options): its requirement is the worst of "no order fills", "all its bids
  fill" and "all its asks fill", each net of the equity change such fills would cause at
  the current mark. Units add up.

All results are micro-USDC integers: requirements round up, values round down.

The class is the interface the risk engine extends (portfolio margin, account health in
``health.py``): ``equity``, ``initial``, ``maintenance`` and ``check_order``.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import mypyc_attr

from clearway.domain.accounts import Account, MarginMode, OpenOrders
from clearway.domain.arith import mul
from clearway.domain.errors import ErrorCode
from clearway.domain.instruments import InstrumentSpec, Kind, OptionType
from clearway.domain.risk.standard_options import DEFAULT_PARAMS as _STD_OPTION_DEFAULTS
from clearway.domain.units import FUNDING_INDEX_SCALE, PPM, ceil_div

_STANDARD: Final = MarginMode.STANDARD
_OPTION: Final = Kind.OPTION
_CALL: Final = OptionType.CALL
UNPAIRED_IM_PPM: Final = round(_STD_OPTION_DEFAULTS.unpaired_im_scale * PPM)  # 1.4·S per unpaired short call
UNPAIRED_MM_PPM: Final = round(_STD_OPTION_DEFAULTS.unpaired_mm_scale * PPM)  # 1.2·S


def _ceil_requirement(lots: int, mark: int, imf: int, denom: int) -> int:
    """⌈lots · mark · imf / denom⌉ for lots ≥ 0 (micro-USDC), exactly, without forming the
    triple product: with lots · mark = q · denom + r (0 ≤ r < denom) it is
    q · imf + ⌈r · imf / denom⌉, whose products stay within machine words (arith.mul)
    where the triple product of a BTC perpetual's mark (~6·10¹⁰ micro-USDC) and a 5 % IMF
    (5·10⁴ ppm) would not from about 1,500 lots on."""
    value = mul(lots, mark)
    q = value // denom
    return mul(q, imf) + (mul(value - mul(q, denom), imf) + denom - 1) // denom


def _perp_charge(size: int, mark: int, scale: int, imf: int, denom: int, bid_size: int, bid_notional: int,
                 ask_size: int, ask_notional: int) -> int:
    """Initial requirement of a perpetual position of ``size`` lots with open orders counted
    as if filled at their limit prices (micro-USDC, requirements rounded up, values down):
    max over {none, all bids, all asks} of ⌈|size after| · mark · IMF⌉ − (value after −
    value now ∓ notional paid/received). ``denom`` = scale · 10⁶. exchange-rules.md
    "Standard margin"."""
    value_now = mul(size, mark) // scale
    worst = _ceil_requirement(abs(size), mark, imf, denom)
    if bid_size:
        after = size + bid_size
        charge = _ceil_requirement(abs(after), mark, imf, denom) - (mul(after, mark) // scale - value_now - bid_notional)
        if charge > worst:
            worst = charge
    if ask_size:
        after = size - ask_size
        charge = _ceil_requirement(abs(after), mark, imf, denom) - (mul(after, mark) // scale - value_now + ask_notional)
        if charge > worst:
            worst = charge
    return worst


@mypyc_attr(allow_interpreted_subclasses=True)  # health.Margin, not compiled, extends it
class StandardMargin:
    """Standard-margin calculator over the exchange's prices.

    Parameters
    ----------
    marks : dict[int, int]
        Mark price by instrument id (micro-USDC per contract), shared with the state.
    index : dict[str, int]
        Index price by underlying, shared with the state.
    instruments : dict[int, InstrumentSpec]
    option_im_ppm, option_im_floor_ppm, option_mm_ppm : int
        Option parameters from the genesis config.
    """

    __slots__ = ("marks", "index", "instruments", "option_im_ppm", "option_im_floor_ppm", "option_mm_ppm",
                 "perps", "stable_price", "pegged", "unpaired_im_ppm", "unpaired_mm_ppm", "funding")

    def __init__(self, marks, index, instruments, option_im_ppm, option_im_floor_ppm, option_mm_ppm,
                 unpaired_im_ppm: int = UNPAIRED_IM_PPM, unpaired_mm_ppm: int = UNPAIRED_MM_PPM) -> None:
        self.marks: dict[int, int] = marks
        self.index: dict[str, int] = index
        self.instruments: dict[int, InstrumentSpec] = instruments
        self.option_im_ppm = option_im_ppm
        self.option_im_floor_ppm = option_im_floor_ppm
        self.option_mm_ppm = option_mm_ppm
        self.unpaired_im_ppm = unpaired_im_ppm
        self.unpaired_mm_ppm = unpaired_mm_ppm
        self.stable_price = PPM  # USD per USDC in ppm; set through ``set_stable_price``
        self.funding: dict[int, int] = {}  # perp id → funding index (the state's, shared)
        self.pegged = True       # stable_price >= 1: cash counts at face value (the fast path's case)
        # perpetual id → (size scale, IMF ppm, scale · 10⁶): the fast path's constants
        self.perps: dict[int, tuple[int, int, int]] = {
            i: (10**spec.size_decimals, spec.imf_ppm, 10**spec.size_decimals * PPM)
            for i, spec in instruments.items() if spec.kind == Kind.PERPETUAL
        }

    def register(self, spec: InstrumentSpec) -> None:
        """Called when an instrument is listed."""
        if spec.kind == Kind.PERPETUAL:
            scale = 10**spec.size_decimals
            self.perps[spec.instrument_id] = (scale, spec.imf_ppm, scale * PPM)

    def set_stable_price(self, stable_price: int) -> None:
        """USD per USDC in ppm (exchange-rules.md "Index, mark price and oracle")."""
        self.stable_price = stable_price
        self.pegged = stable_price >= PPM

    def pending_funding(self, account: Account) -> int:
        """Σ over the account's perpetuals of the funding a settlement now would pay it
        (micro-USDC, negative = it would pay), each rounded against the account
        (``units.funding_payment``). Source: exchange-rules.md "Funding"."""
        funding = self.funding
        if not funding:
            return 0
        total = 0
        perps = self.perps
        for instrument, position in account.positions.items():
            index = funding.get(instrument)
            if index is not None and index != position.funding_index:
                scale = perps[instrument][0]
                total += (-position.size * (index - position.funding_index)) // (scale * FUNDING_INDEX_SCALE)
        return total

    def cash_value(self, cash: int) -> int:
        """cash · min(1, stable price), micro-USDC rounded down; a negative balance (a debt
        in USDC) counts in full. Source: exchange-rules.md "Standard margin", Equity."""
        if cash <= 0 or self.pegged:
            return cash
        return cash * self.stable_price // PPM

    # -- per contract ----------------------------------------------------------------
    def _short_option_rates(self, spec: InstrumentSpec, mark: int) -> tuple[int, int]:
        """(IM, MM) per short contract in micro-USDC, rounded up; None index → error."""
        spot = self.index[spec.underlying]
        if spec.option_type == OptionType.CALL:
            otm = max(spec.strike - spot, 0)
        else:
            otm = max(spot - spec.strike, 0)
        im = mark + max(ceil_div(spot * self.option_im_ppm, PPM) - otm, ceil_div(spot * self.option_im_floor_ppm, PPM))
        mm = mark + ceil_div(spot * self.option_mm_ppm, PPM)
        return im, mm

    def _requirement(self, spec: InstrumentSpec, mark: int, size: int, initial: bool) -> int:
        """Requirement of a position of ``size`` lots, micro-USDC rounded up."""
        if not size:
            return 0
        scale = 10**spec.size_decimals
        if spec.kind == Kind.PERPETUAL:
            rate = spec.imf_ppm if initial else spec.mmf_ppm
            return ceil_div(abs(size) * mark * rate, scale * PPM)
        if size > 0:
            return 0
        im, mm = self._short_option_rates(spec, mark)
        return ceil_div(-size * (im if initial else mm), scale)

    def _value(self, spec: InstrumentSpec, mark: int, size: int) -> int:
        """Contribution of a position to equity, rounded down (long options count 0)."""
        if spec.kind == Kind.OPTION and size > 0:
            return 0
        return size * mark // (10**spec.size_decimals)

    # -- per instrument with open orders ---------------------------------------------
    def charge(self, spec: InstrumentSpec, size: int, agg: OpenOrders | None,
               bid_size: int = 0, bid_notional: int = 0, ask_size: int = 0, ask_notional: int = 0) -> int:
        """Initial requirement of one instrument with open orders as if filled.

        ``agg`` holds the open orders; the four extra numbers are added to it (a
        hypothetical order). Returns max over {none, all bids, all asks} of
        requirement(position after) − (value after − value now − cash paid), i.e. the
        requirement net of the equity the fills would add. Rounded up.
        """
        instrument = spec.instrument_id
        mark = self.marks[instrument]
        if agg is not None:
            bid_size += agg.bid_size
            bid_notional += agg.bid_notional
            ask_size += agg.ask_size
            ask_notional += agg.ask_notional
        perp = self.perps.get(instrument)
        if perp is not None:  # fast path: the same formulas as below, in integers for perpetuals
            scale, imf, denom = perp
            return _perp_charge(size, mark, scale, imf, denom, bid_size, bid_notional, ask_size, ask_notional)
        value_now = self._value(spec, mark, size)
        worst = self._requirement(spec, mark, size, True)
        if bid_size:
            after = size + bid_size
            gain = self._value(spec, mark, after) - value_now - bid_notional
            worst = max(worst, self._requirement(spec, mark, after, True) - gain)
        if ask_size:
            after = size - ask_size
            gain = self._value(spec, mark, after) - value_now + ask_notional
            worst = max(worst, self._requirement(spec, mark, after, True) - gain)
        return worst

    # -- options of one expiry (the unit of the max-loss cap) ------------------------
    def expiry_requirement(self, specs: list[InstrumentSpec], sizes: list[int], initial: bool) -> int:
        """Standard requirement of one expiry's option positions, micro-USDC rounded up.

        ``specs`` / ``sizes`` (lots, signed) are parallel, all of one (underlying, expiry).
        Returns min(Σ per-contract requirements of the shorts (``_requirement``, each
        rounded up), maximum loss). The maximum loss is exact: with L the largest lot scale,
        payoff(P)·L = Σ size·(L/scale)·(max(P − K, 0) | max(K − P, 0)) at P ∈ {0} ∪ strikes,
        loss = max(0, −min payoff) + unpaired · S · (1.4 | 1.2) with unpaired = net short
        calls, the sum rounded up once. Source: exchange-rules.md "Standard margin"; the
        float reference is ``risk.standard_options.standard_option_margin_expiry``.

        Raises KeyError if a mark or the underlying's index is missing.
        """
        return self.expiry_requirements(specs, [sizes], initial)[0]

    def expiry_requirements(self, specs: list[InstrumentSpec], states: list[list[int]], initial: bool) -> list[int]:
        """``expiry_requirement`` of several size vectors of the same ``specs`` (states of
        one expiry: none, all bids fill, all asks fill, an order added), sharing the
        per-contract rates; one result per state, micro-USDC rounded up."""
        marks = self.marks
        spot = 0
        scales = []
        big = 1
        for spec in specs:
            scale = 10**spec.size_decimals
            scales.append(scale)
            if scale > big:
                big = scale
        rates: list[int | None] = [None] * len(specs)
        out = []
        for sizes in states:
            isolated = 0
            j = 0
            for size in sizes:
                if size < 0:
                    rate = rates[j]
                    if rate is None:  # per short contract (rounded up)
                        spec = specs[j]
                        spot = self.index[spec.underlying]
                        im, mm = self._short_option_rates(spec, marks[spec.instrument_id])
                        rate = rates[j] = im if initial else mm
                    isolated -= size * rate // scales[j]  # ⌈−size · rate / scale⌉, as _requirement
                j += 1
            if not isolated:
                out.append(0)
                continue
            legs = []
            points = {0}
            net_calls = 0
            j = 0
            for size in sizes:
                if size:
                    spec = specs[j]
                    n = size * (big // scales[j])
                    call = spec.option_type == _CALL
                    legs.append((spec.strike, call, n))
                    points.add(spec.strike)
                    if call:
                        net_calls += n
                j += 1
            unpaired = -net_calls if net_calls < 0 else 0
            ppm = self.unpaired_im_ppm if initial else self.unpaired_mm_ppm
            if unpaired * spot * ppm >= isolated * big * PPM:  # max loss ≥ its unpaired part ≥ isolated
                out.append(isolated)
                continue
            worst = 0
            for point in points:
                payoff = 0
                for strike, call, n in legs:
                    if call:
                        if point > strike:
                            payoff += n * (point - strike)
                    elif strike > point:
                        payoff += n * (strike - point)
                if payoff < worst:
                    worst = payoff
            max_loss = -((worst * PPM - unpaired * spot * ppm) // (big * PPM))  # rounded up
            out.append(isolated if isolated < max_loss else max_loss)
        return out

    def _option_value(self, specs: list[InstrumentSpec], sizes: list[int]) -> int:
        """Σ values of short options (longs count 0), rounded down per position."""
        total = 0
        marks = self.marks
        for spec, size in zip(specs, sizes):
            if size < 0:
                total += size * marks[spec.instrument_id] // 10**spec.size_decimals
        return total

    def expiry_charge(self, account: Account, underlying: str, expiry_ms: int,
                      extra: tuple[int, int, int, int, int] | None = None) -> int:
        """Initial requirement of the account's options of one expiry, open orders counted
        as if filled at their limit price, micro-USDC rounded up.

        max over {none, all bids of the expiry, all asks of the expiry} of
        requirement(positions after) − (value after − value now − cash paid + cash
        received). ``extra`` = (instrument, Δbid lots, Δbid notional, Δask lots, Δask
        notional) adds a hypothetical order (negative deltas remove a replaced one).
        """
        instruments = self.instruments
        specs: list[InstrumentSpec] = []
        ids: list[int] = []
        for instrument in (*account.positions, *account.open):
            spec = instruments[instrument]
            if spec.kind == _OPTION and spec.expiry_ms == expiry_ms and spec.underlying == underlying \
                    and instrument not in ids:
                specs.append(spec)
                ids.append(instrument)
        if extra is not None and extra[0] not in ids:
            specs.append(instruments[extra[0]])
            ids.append(extra[0])
        sizes = [account.position_size(i) for i in ids]
        bids = list(sizes)
        asks = list(sizes)
        bid_cash = ask_cash = 0
        any_bid = any_ask = False
        for j, instrument in enumerate(ids):
            agg = account.open.get(instrument)
            db = dbn = da = dan = 0
            if agg is not None:
                db, dbn, da, dan = agg.bid_size, agg.bid_notional, agg.ask_size, agg.ask_notional
            if extra is not None and extra[0] == instrument:
                db += extra[1]
                dbn += extra[2]
                da += extra[3]
                dan += extra[4]
            if db:
                any_bid = True
                bids[j] += db
                bid_cash += dbn
            if da:
                any_ask = True
                asks[j] -= da
                ask_cash += dan
        states = [sizes]
        if any_bid:
            states.append(bids)
        if any_ask:
            states.append(asks)
        required = self.expiry_requirements(specs, states, True)
        worst = required[0]
        if any_bid or any_ask:
            value_now = self._option_value(specs, sizes)
            if any_bid:
                gain = self._option_value(specs, bids) - value_now - bid_cash
                worst = max(worst, required[1] - gain)
            if any_ask:
                gain = self._option_value(specs, asks) - value_now + ask_cash
                worst = max(worst, required[-1] - gain)
        return worst

    def _expiries(self, account: Account) -> set[tuple[str, int]]:
        """(underlying, expiry_ms) of every option the account holds or has orders in."""
        out = set()
        instruments = self.instruments
        for instrument in (*account.positions, *account.open):
            spec = instruments[instrument]
            if spec.kind == _OPTION:
                out.add((spec.underlying, spec.expiry_ms))
        return out

    # -- per account -----------------------------------------------------------------
    def equity(self, account: Account) -> int:
        """cash · min(1, stable) + Σ perp and short-option values at the mark + unsettled
        funding (micro-USDC, rounded down; long options count 0 in standard mode)."""
        total = self.cash_value(account.cash)
        marks = self.marks
        perps = self.perps
        for instrument, position in account.positions.items():
            perp = perps.get(instrument)
            if perp is not None:
                total += position.size * marks[instrument] // perp[0]
            else:
                total += self._value(self.instruments[instrument], marks[instrument], position.size)
        if self.funding:
            total += self.pending_funding(account)
        return total

    def initial(self, account: Account, skip=None) -> int:
        """Initial requirement including open orders, micro-USDC rounded up: Σ perpetual
        ``charge`` + Σ expiry ``expiry_charge``; ``skip`` (a perpetual's id or an
        (underlying, expiry_ms) pair) leaves one unit out (the pre-trade check adds it)."""
        total = 0
        instruments = self.instruments
        positions = account.positions
        opened = account.open
        perps = self.perps
        for instrument, position in positions.items():
            if instrument in perps and instrument != skip:
                total += self.charge(instruments[instrument], position.size, opened.get(instrument))
        for instrument, agg in opened.items():
            if instrument in perps and instrument not in positions and instrument != skip:
                total += self.charge(instruments[instrument], 0, agg)
        for unit in self._expiries(account):
            if unit != skip:
                total += self.expiry_charge(account, *unit)
        return total

    def maintenance(self, account: Account) -> int:
        """Maintenance requirement of the positions (open orders do not count): perps
        ⌈|notional|·MMF⌉, options per expiry with the max-loss cap."""
        total = 0
        instruments = self.instruments
        groups: dict[tuple[str, int], tuple[list, list]] = {}
        for instrument, position in account.positions.items():
            spec = instruments[instrument]
            if spec.kind == _OPTION:
                specs, sizes = groups.setdefault((spec.underlying, spec.expiry_ms), ([], []))
                specs.append(spec)
                sizes.append(position.size)
            else:
                total += self._requirement(spec, self.marks[instrument], position.size, False)
        for specs, sizes in groups.values():
            total += self.expiry_requirement(specs, sizes, False)
        return total

    def priced(self, account: Account, extra: int = -1) -> bool:
        """True when every instrument the account touches (and ``extra``) has a mark, and
        options have their underlying's index."""
        marks = self.marks
        for instrument in (*account.positions, *account.open, extra):
            if instrument < 0:
                continue
            if instrument not in marks:
                return False
            spec = self.instruments[instrument]
            if spec.kind == Kind.OPTION and spec.underlying not in self.index:
                return False
        return True

    def check_order(self, account: Account, spec: InstrumentSpec, side: int, price: int, lots: int,
                    replaces=None) -> ErrorCode | None:
        """Pre-trade check of a new order (or of an amended one, ``replaces`` = the old order).

        Accepts when initial surplus ≥ 0 with the order counted at its limit price, or when
        the order does not raise the account's initial requirement (risk-reducing). Returns
        None or the rejection code (``INSUFFICIENT_MARGIN``, ``MARK_PRICE_UNAVAILABLE``);
        never mutates.

        A perpetual in a standard account that trades only it takes an inlined fast path;
        everything else goes to ``check_general`` (overridden for portfolio accounts in
        health.py).
        """
        instrument = spec.instrument_id
        positions = account.positions
        opened = account.open
        perp = self.perps.get(instrument)
        if (perp is not None and replaces is None and len(positions) <= 1 and len(opened) <= 1
                and account.margin_mode is _STANDARD and self.pegged):
            position = positions.get(instrument)
            agg = opened.get(instrument)
            mark = self.marks.get(instrument)
            if (mark is not None and (position is not None or not positions)
                    and (agg is not None or not opened)):
                # fast path, the common case: a perpetual in an account that trades only it.
                # Same formulas as ``charge`` with the order added; requirement = this charge.
                size = position.size if position is not None else 0
                scale, imf, denom = perp
                notional = mul(lots, price) // scale
                if agg is not None:
                    bid_size, bid_notional, ask_size, ask_notional = (
                        agg.bid_size, agg.bid_notional, agg.ask_size, agg.ask_notional)
                else:
                    bid_size = bid_notional = ask_size = ask_notional = 0
                if side > 0:
                    bid_size += lots
                    bid_notional += notional
                else:
                    ask_size += lots
                    ask_notional += notional
                after = _perp_charge(size, mark, scale, imf, denom, bid_size, bid_notional, ask_size, ask_notional)
                value_now = mul(size, mark) // scale
                if position is not None and self.funding:
                    value_now_funded = value_now + self.pending_funding(account)
                else:
                    value_now_funded = value_now
                if account.cash + value_now_funded >= after:
                    return None
                if after <= self.charge(spec, size, agg):
                    return None  # risk-reducing
                return ErrorCode.INSUFFICIENT_MARGIN
        return self.check_general(account, spec, side, price, lots, replaces)

    @staticmethod
    def order_delta(spec: InstrumentSpec, side: int, price: int, lots: int, replaces=None
                    ) -> tuple[int, int, int, int]:
        """(Δbid lots, Δbid notional, Δask lots, Δask notional) of a new order, minus the
        remaining part of the order it replaces. Notional truncates (units.notional)."""
        scale = 10**spec.size_decimals
        notional = lots * price // scale
        db = dbn = da = dan = 0
        if side > 0:
            db, dbn = lots, notional
        else:
            da, dan = lots, notional
        if replaces is not None:
            old = replaces.remaining * replaces.price // scale
            if replaces.side > 0:
                db -= replaces.remaining
                dbn -= old
            else:
                da -= replaces.remaining
                dan -= old
        return db, dbn, da, dan

    def check_general(self, account: Account, spec: InstrumentSpec, side: int, price: int, lots: int,
                      replaces=None) -> ErrorCode | None:
        """Standard-margin pre-trade check of any order (see ``check_order``): the order's
        unit (perpetual instrument or option expiry) is charged before and after; accepted
        if equity ≥ initial − before + after, or if after ≤ before (risk-reducing)."""
        instrument = spec.instrument_id
        if not self.priced(account, instrument):
            return ErrorCode.MARK_PRICE_UNAVAILABLE
        delta = self.order_delta(spec, side, price, lots, replaces)
        unit: tuple[str, int] | int  # an option expiry or a perpetual instrument
        if spec.kind == _OPTION:
            unit = (spec.underlying, spec.expiry_ms)
            after_here = self.expiry_charge(account, spec.underlying, spec.expiry_ms, (instrument, *delta))
        else:
            unit = instrument
            size = account.position_size(instrument)
            agg = account.open.get(instrument)
            after_here = self.charge(spec, size, agg, *delta)
        if StandardMargin.equity(self, account) >= StandardMargin.initial(self, account, unit) + after_here:
            return None
        if spec.kind == _OPTION:
            before_here = self.expiry_charge(account, spec.underlying, spec.expiry_ms)
        else:
            before_here = self.charge(spec, size, agg)
        if after_here <= before_here:
            return None  # risk-reducing: accepted even below initial margin
        return ErrorCode.INSUFFICIENT_MARGIN

    def free_collateral(self, account: Account) -> int:
        """equity − initial requirement (may be negative)."""
        return self.equity(account) - self.initial(account)
