"""Account figures read on the sequencer (``Node.query``): account summary, positions and
the margin breakdown, in Deribit's shapes (USDC amounts as floats).

Every function here takes the live ``ExchangeState`` and must not mutate it; it runs on
the sequencer thread between two batches, so it sees every sequenced command. Margin
figures come from the domain (``state.margin.health``: health.py, margin.py,
portfolio_margin.py); nothing is recomputed here except the per-position requirements
(the same formulas, per position, for display) and the Greeks.
"""

from __future__ import annotations

import math

import numpy as np

from clearway.api.names import api_name, usdc
from clearway.domain.accounts import MarginMode
from clearway.domain.instruments import Kind
from clearway.domain.market import black76_inputs
from clearway.domain.risk.black76 import black76_greeks
from clearway.domain.units import PPM, ceil_div

_MODEL = {MarginMode.STANDARD: "segregated_sm", MarginMode.PORTFOLIO: "cross_pm"}


def _health(state, account):
    try:
        return state.margin.health(account)
    except (KeyError, ZeroDivisionError, ValueError):
        return None


def account_summary(state, account_id: int | None, owner: str, deposit_address: str | None = None) -> dict:
    """Deribit ``get_account_summary`` for the USDC account of ``owner`` (zeros if it has
    never deposited). ccxt reads ``available_funds`` (free), ``maintenance_margin`` (used)
    and ``equity`` (total)."""
    account = state.accounts.get(account_id) if account_id is not None else None
    cash = account.cash if account is not None else 0
    health = _health(state, account) if account is not None else None
    if account is None:
        equity = im = mm = 0
    elif health is None:  # a position without a price: report cash, no margin figures
        equity, im, mm = cash, 0, 0
    else:
        equity, im, mm = health.equity, health.initial_margin, health.maintenance_margin
    upl = 0
    delta = 0.0
    if account is not None:
        for instrument, position in account.positions.items():
            spec = state.instruments[instrument]
            mark = state.marks.get(instrument)
            if mark is not None:
                upl += (mark - position.entry_price) * position.size // 10**spec.size_decimals
            if spec.kind == Kind.PERPETUAL:
                delta += position.size / 10**spec.size_decimals
    mode = account.margin_mode if account is not None else MarginMode.STANDARD
    available = max(equity - im, 0)
    return {
        "currency": "USDC",
        "id": account_id if account_id is not None else -1,
        "username": owner,
        "owner": owner,
        "type": "main",
        "balance": usdc(cash),
        "equity": usdc(equity),
        "margin_balance": usdc(equity),
        "initial_margin": usdc(im),
        "maintenance_margin": usdc(mm),
        "projected_initial_margin": usdc(im),
        "projected_maintenance_margin": usdc(mm),
        "available_funds": usdc(available),
        "available_withdrawal_funds": usdc(available),
        "total_pl": usdc(upl),
        "session_upl": usdc(upl),
        "session_rpl": 0.0,
        "futures_pl": usdc(upl),
        "options_pl": 0.0,
        "delta_total": delta,
        "projected_delta_total": delta,
        "portfolio_margining_enabled": mode == MarginMode.PORTFOLIO,
        "margin_model": _MODEL.get(mode, "segregated_sm"),
        "cross_collateral_enabled": False,
        "fee_balance": 0.0,
        "deposit_address": deposit_address or "",
        "priced": health is not None or account is None,
        "limits": {},
    }


def _position_requirements(state, spec, size: int, mark: int) -> tuple[int, int]:
    """(IM, MM) of one position alone, micro-USDC rounded up (display only: the account's
    requirement is the domain's, with caps and netting)."""
    if spec.kind == Kind.PERPETUAL:
        scale = 10**spec.size_decimals
        return (ceil_div(abs(size) * mark * spec.imf_ppm, scale * PPM),
                ceil_div(abs(size) * mark * spec.mmf_ppm, scale * PPM))
    if size >= 0 or spec.underlying not in state.index:
        return 0, 0
    margin = state.margin
    return margin.expiry_requirement([spec], [size], True), margin.expiry_requirement([spec], [size], False)


def positions(state, account_id: int | None, currency: str | None = None, kind: str | None = None) -> list[dict]:
    """Deribit ``get_positions`` of an account (open positions only)."""
    account = state.accounts.get(account_id) if account_id is not None else None
    if account is None:
        return []
    out = []
    for instrument in sorted(account.positions):
        position = account.positions[instrument]
        spec = state.instruments[instrument]
        if currency not in (None, "any", "USDC", spec.underlying):
            continue
        spec_kind = "option" if spec.kind == Kind.OPTION else "future"
        if kind not in (None, "any", spec_kind):
            continue
        out.append(position_json(state, account, spec, position))
    return out


def position_json(state, account, spec, position) -> dict:
    scale = 10**spec.size_decimals
    size = position.size
    mark = state.marks.get(spec.instrument_id, 0)
    index = state.index.get(spec.underlying, 0)
    im, mm = _position_requirements(state, spec, size, mark) if mark else (0, 0)
    pnl = (mark - position.entry_price) * size // scale if mark else 0
    agg = account.open.get(spec.instrument_id)
    open_margin = 0
    if agg is not None and spec.kind == Kind.PERPETUAL:
        open_margin = ceil_div(max(agg.bid_notional, agg.ask_notional) * spec.imf_ppm, PPM)
    notional = abs(size) * mark / scale / 1e6
    return {
        "instrument_name": api_name(spec),
        "kind": "option" if spec.kind == Kind.OPTION else "future",
        "direction": "buy" if size > 0 else ("sell" if size < 0 else "zero"),
        "size": size / scale,
        "size_currency": size / scale,
        "average_price": usdc(position.entry_price),
        "mark_price": usdc(mark),
        "index_price": usdc(index),
        "settlement_price": usdc(mark),
        "floating_profit_loss": usdc(pnl),
        "total_profit_loss": usdc(pnl),
        "realized_profit_loss": 0.0,
        "realized_funding": 0.0,
        "initial_margin": usdc(im),
        "maintenance_margin": usdc(mm),
        "open_orders_margin": usdc(open_margin),
        "delta": size / scale if spec.kind == Kind.PERPETUAL else None,
        "leverage": int(round(notional / (im / 1e6))) if im else 0,
        "estimated_liquidation_price": None,
        "interest_value": 0.0,
    }


def margin_breakdown(state, account_id: int | None, owner: str) -> dict:
    """Clearway ``private/get_margin_breakdown``: the account's figures in its own margin
    mode and in both modes, and per underlying the positions' Greeks (Black-76 at the mark
    vol of the market data) and, where market data exists, the portfolio-margin worst
    scenario of the positions (portfolio_margin.scenario_worst, without open orders).
    Amounts in USDC; Greeks in contracts of the underlying (delta), USDC per unit (gamma
    per unit², vega per vol point, theta per day)."""
    account = state.accounts.get(account_id) if account_id is not None else None
    out: dict = {"owner": owner, "account": account_id, "currency": "USDC"}
    if account is None:
        out.update({"margin_model": "segregated_sm", "equity": 0.0, "initial_margin": 0.0,
                    "maintenance_margin": 0.0, "modes": {}, "underlyings": {}})
        return out

    def figures(health):
        if health is None:
            return None
        return {"equity": usdc(health.equity), "initial_margin": usdc(health.initial_margin),
                "maintenance_margin": usdc(health.maintenance_margin),
                "initial_surplus": usdc(health.initial_surplus),
                "maintenance_surplus": usdc(health.maintenance_surplus)}

    margin = state.margin
    modes = {}
    for mode, name in ((MarginMode.STANDARD, "standard"), (MarginMode.PORTFOLIO, "portfolio")):
        try:
            modes[name] = figures(margin.health(account, mode))
        except (KeyError, ZeroDivisionError, ValueError):
            modes[name] = None
    own = "portfolio" if account.margin_mode == MarginMode.PORTFOLIO else "standard"
    out.update({"margin_model": _MODEL[account.margin_mode], "mode": own, "modes": modes,
                "cash": usdc(account.cash), **(modes[own] or {"priced": False})})
    out["underlyings"] = {u: _underlying(state, account, u) for u in
                          sorted({state.instruments[i].underlying for i in account.positions})}
    return out


def _underlying(state, account, underlying: str) -> dict:
    specs = [state.instruments[i] for i in sorted(account.positions) if state.instruments[i].underlying == underlying]
    delta = gamma = vega = theta = 0.0
    perp_contracts = 0.0
    options = [s for s in specs if s.kind == Kind.OPTION]
    for spec in specs:
        if spec.kind == Kind.PERPETUAL:
            contracts = account.positions[spec.instrument_id].size / 10**spec.size_decimals
            delta += contracts
            perp_contracts += contracts
    market = state.markets.get(underlying)
    out: dict = {"index_price": usdc(state.index.get(underlying, 0)), "perpetual_contracts": perp_contracts}
    if market is not None and options:
        x = black76_inputs(market, options)
        if x.priced:
            sizes = np.array([account.positions[s.instrument_id].size / 10**s.size_decimals for s in x.priced])
            g = black76_greeks(x.forwards, x.strikes, x.times, x.vols, x.rates, x.calls)
            delta += float(np.dot(sizes, g.delta))
            gamma += float(np.dot(sizes, g.gamma))
            vega += float(np.dot(sizes, g.vega)) / 100.0
            theta += float(np.dot(sizes, g.theta)) / 365.0
    out.update({"delta": delta, "gamma": gamma, "vega": vega, "theta": theta})
    out["worst_scenario_loss"] = _worst_scenario(state, account, underlying, specs)
    return out


def _worst_scenario(state, account, underlying: str, specs) -> float | None:
    """PM worst scenario PnL (USD, ≤ 0) of the positions in ``underlying``; None without
    market data or when an option has no risk-array row."""
    try:
        from clearway.domain.portfolio_margin import scenario_worst
    except ImportError:  # pragma: no cover - older domain
        return None
    risk = state.margin.risk.get(underlying)
    if risk is None:
        return None
    rows, lots = [], []
    perp_notional = 0.0
    for spec in specs:
        size = account.positions[spec.instrument_id].size / 10**spec.size_decimals
        if spec.kind == Kind.OPTION:
            row = risk.rows.get(spec.instrument_id)
            if row is None:
                return None
            rows.append(row)
            lots.append(size)
        else:
            mark = state.marks.get(spec.instrument_id)
            if mark is None:
                return None
            perp_notional += size * mark / 1e6
    q = np.array([[*lots, perp_notional]], dtype=np.float64)
    agg = q @ risk.expanded[[*rows, risk.perp_row]]
    worst, _ = scenario_worst(risk, agg)
    value = float(worst[0])
    return value if math.isfinite(value) else None
