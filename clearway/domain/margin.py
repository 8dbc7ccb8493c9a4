"""Standard margin: equity, initial and maintenance requirements, the pre-trade check.

Source: exchange-rules.md "Standard margin".

- Perpetuals (dYdX style): IM = ⌈|notional| · IMF⌉, MM = ⌈|notional| · MMF⌉ at the mark.
- Options, per short contract (Deribit / Derive standard): IM = mark + max(0.15·S − OTM,
  0.10·S), MM = mark + 0.075·S with S the index; long options need nothing and their value
  does not count as collateral in standard mode.
- Equity = cash + Σ perp size × mark + Σ short option size × mark (a liability).
- Open orders count toward IM as if filled at their limit price: per instrument the
  requirement is the worst of "no order fills", "all bids fill" and "all asks fill", each
  net of the equity change such fills would cause at the current mark.

All results are micro-USDC integers: requirements round up, values round down.

The class is the interface the risk engine extends (options caps, portfolio margin):
``equity``, ``initial``, ``maintenance`` and ``check_order``.
"""

from __future__ import annotations

from clearway.domain.accounts import Account, OpenOrders
from clearway.domain.errors import ErrorCode
from clearway.domain.instruments import InstrumentSpec, Kind, OptionType
from clearway.domain.units import PPM, ceil_div


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
                 "perps")

    def __init__(self, marks, index, instruments, option_im_ppm, option_im_floor_ppm, option_mm_ppm) -> None:
        self.marks: dict[int, int] = marks
        self.index: dict[str, int] = index
        self.instruments: dict[int, InstrumentSpec] = instruments
        self.option_im_ppm = option_im_ppm
        self.option_im_floor_ppm = option_im_floor_ppm
        self.option_mm_ppm = option_mm_ppm
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
        if perp is not None:  # fast path: the same formulas as below, inlined for perpetuals
            scale, imf, denom = perp
            rate = mark * imf
            value_now = size * mark // scale
            worst = (abs(size) * rate + denom - 1) // denom
            if bid_size:
                after = size + bid_size
                charge = (abs(after) * rate + denom - 1) // denom - (after * mark // scale - value_now - bid_notional)
                if charge > worst:
                    worst = charge
            if ask_size:
                after = size - ask_size
                charge = (abs(after) * rate + denom - 1) // denom - (after * mark // scale - value_now + ask_notional)
                if charge > worst:
                    worst = charge
            return worst
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

    # -- per account -----------------------------------------------------------------
    def equity(self, account: Account) -> int:
        """cash + Σ position values at the mark (micro-USDC, rounded down)."""
        total = account.cash
        marks = self.marks
        perps = self.perps
        for instrument, position in account.positions.items():
            perp = perps.get(instrument)
            if perp is not None:
                total += position.size * marks[instrument] // perp[0]
            else:
                total += self._value(self.instruments[instrument], marks[instrument], position.size)
        return total

    def initial(self, account: Account) -> int:
        """Initial requirement including open orders, micro-USDC rounded up."""
        total = 0
        instruments = self.instruments
        positions = account.positions
        opened = account.open
        for instrument, position in positions.items():
            total += self.charge(instruments[instrument], position.size, opened.get(instrument))
        for instrument, agg in opened.items():
            if instrument not in positions:
                total += self.charge(instruments[instrument], 0, agg)
        return total

    def maintenance(self, account: Account) -> int:
        """Maintenance requirement of the positions (open orders do not count)."""
        total = 0
        for instrument, position in account.positions.items():
            total += self._requirement(self.instruments[instrument], self.marks[instrument], position.size, False)
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

        Accepts when equity ≥ IM with the order counted at its limit price, or when the
        order does not raise the account's initial requirement (risk-reducing). Returns
        None or the rejection code; never mutates.

        Only the order's instrument needs a price check: an account can only hold
        positions or orders in instruments that had a mark when they were opened, and marks
        are never removed while an instrument is listed.
        """
        instrument = spec.instrument_id
        if instrument not in self.marks or (spec.kind == Kind.OPTION and spec.underlying not in self.index):
            return ErrorCode.MARK_PRICE_UNAVAILABLE
        positions = account.positions
        position = positions.get(instrument)
        size = position.size if position is not None else 0
        opened = account.open
        agg = opened.get(instrument)
        perp = self.perps.get(instrument)
        single = (len(positions) <= 1 and len(opened) <= 1 and (position is not None or not positions)
                  and (agg is not None or not opened))
        if perp is not None and single and replaces is None:
            # fast path, the common case: a perpetual in an account that trades only it.
            # Same formulas as ``charge`` with the order added; requirement = this charge.
            scale, imf, denom = perp
            mark = self.marks[instrument]
            notional = lots * price // scale
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
            rate = mark * imf
            value_now = size * mark // scale
            after = (abs(size) * rate + denom - 1) // denom
            if bid_size:
                filled = size + bid_size
                charge = (abs(filled) * rate + denom - 1) // denom - (filled * mark // scale - value_now - bid_notional)
                if charge > after:
                    after = charge
            if ask_size:
                filled = size - ask_size
                charge = (abs(filled) * rate + denom - 1) // denom - (filled * mark // scale - value_now + ask_notional)
                if charge > after:
                    after = charge
            if account.cash + value_now >= after:
                return None
            if after <= self.charge(spec, size, agg):
                return None  # risk-reducing
            return ErrorCode.INSUFFICIENT_MARGIN
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
        after_here = self.charge(spec, size, agg, db, dbn, da, dan)
        if single:
            if self.equity(account) >= after_here:
                return None
            before_here = self.charge(spec, size, agg)
        else:
            before_here = self.charge(spec, size, agg)
            if self.equity(account) >= self.initial(account) - before_here + after_here:
                return None
        if after_here <= before_here:
            return None  # risk-reducing: accepted even below initial margin
        return ErrorCode.INSUFFICIENT_MARGIN

    def free_collateral(self, account: Account) -> int:
        """equity − initial requirement (may be negative)."""
        return self.equity(account) - self.initial(account)
