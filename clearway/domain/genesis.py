"""Genesis configuration: everything a replay needs besides the commands.

Verifiers rebuild the state from this config (its hash is held by the vault) plus the
command stream. Defaults are the ones of exchange-rules.md.
"""

from __future__ import annotations

import hashlib
from typing import Final

import msgspec

from clearway.domain.instruments import InstrumentSpec
from clearway.domain.oracle import OracleParams

ZERO_ADDRESS = "0x" + "00" * 20


class GenesisConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Exchange-wide parameters.

    fee_account_owner, insurance_fund_owner : str
        Addresses owning the two system accounts (account ids 0 and 1).
    instruments : list[InstrumentSpec]
        Listed at genesis, ids 0..n−1 in order.
    market_protection_ppm : int
        Market orders trade no worse than mark × (1 ± this); default 5%.
    max_open_orders : int
        Per account.
    max_client_order_id_length : int
    option_im_ppm, option_im_floor_ppm, option_mm_ppm : int
        Standard option margin per short contract (exchange-rules.md "Standard margin"):
        IM = mark + max(0.15·S − OTM, 0.10·S), MM = mark + 0.075·S.

    Oracle (exchange-rules.md "Index, mark price and oracle"; oracle.py):

    oracle_reporters : list[str]
        Reporter addresses (lower-case 0x hex of secp256k1 keys); empty = no signed oracle.
    oracle_quorum : int
        Distinct valid reports an update needs (default 3).
    oracle_max_age_ms, oracle_max_future_ms : int
        A report older than 60 s or more than 5 s ahead of the command is rejected.
    oracle_max_move_ppm, oracle_max_move_window_ms : int
        A report whose index moves more than 10 % from the last accepted index, while that
        index is younger than 60 s, is rejected.
    halt_after_ms : int
        No accepted update for this long (default 300 s) halts the underlying's markets.
    mark_ema_ms : int
        Time constant of the perp mark's EMA of (book mid − index), default 150 s.

    Funding (exchange-rules.md "Funding"; funding.py), rates in 10⁻¹² (funding.RATE_SCALE):

    funding_sample_ms, funding_interval_ms : int
        Premium sample every minute, funding tick every hour.
    impact_notional : QuoteAmount
        Impact order size, default 10,000 USDC.
    premium_clamp : int
        |premium sample| cap, default 5 % (the spec gives no number; rate_8h is clamped
        to ±6·(IMF − MMF) anyway).
    default_funding_rate : int
        Added to the hourly mean premium, default 0.

    Liquidation (exchange-rules.md "Liquidation, insurance fund, deleveraging"):

    liquidation_fee_ppm : int
        Share of a liquidation fill's quote the insurance fund takes from the surplus, 0.5 %.
    liquidation_smmr_ppm, liquidation_ba_ppm : int
        SMMR (1.5) and BA (1) of the fillable price.
    liquidation_min_step, liquidation_step_ppm, liquidation_cap_per_second : int
        Per step close at most max(min(1,000 USDC, |N|), 10 % of |N|), and at most
        100,000 USDC notional per account per second.
    option_liquidation_penalty_ppm : int
        An option is closed at mark ± this share (10 %) of its per-contract MM.

    Expiry (exchange-rules.md "Option expiry and netting"):

    settlement_twap_ms : int
        Window of the index TWAP that gives the settlement price, 30 minutes.
    """

    fee_account_owner: str = ZERO_ADDRESS
    insurance_fund_owner: str = "0x" + "00" * 19 + "01"
    instruments: list[InstrumentSpec] = []
    market_protection_ppm: int = 50_000
    max_open_orders: int = 1_000
    max_client_order_id_length: int = 64
    option_im_ppm: int = 150_000
    option_im_floor_ppm: int = 100_000
    option_mm_ppm: int = 75_000
    oracle_reporters: list[str] = []
    oracle_quorum: int = 3
    oracle_max_age_ms: int = 60_000
    oracle_max_future_ms: int = 5_000
    oracle_max_move_ppm: int = 100_000
    oracle_max_move_window_ms: int = 60_000
    halt_after_ms: int = 300_000
    mark_ema_ms: int = 150_000
    funding_sample_ms: int = 60_000
    funding_interval_ms: int = 3_600_000
    impact_notional: int = 10_000 * 10**6
    premium_clamp: int = 50_000_000_000
    default_funding_rate: int = 0
    liquidation_fee_ppm: int = 5_000
    liquidation_smmr_ppm: int = 1_500_000
    liquidation_ba_ppm: int = 1_000_000
    liquidation_min_step: int = 1_000 * 10**6
    liquidation_step_ppm: int = 100_000
    liquidation_cap_per_second: int = 100_000 * 10**6
    option_liquidation_penalty_ppm: int = 100_000
    settlement_twap_ms: int = 1_800_000

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self)

    def config_hash(self) -> bytes:
        """SHA-256 of the canonical MessagePack encoding (field order is fixed)."""
        return hashlib.sha256(self.encode()).digest()

    def oracle_params(self) -> OracleParams:
        """The oracle rules of this config as ``oracle.aggregate`` takes them."""
        return OracleParams(tuple(self.oracle_reporters), self.oracle_quorum, self.oracle_max_age_ms,
                            self.oracle_max_move_ppm, self.oracle_max_move_window_ms, self.halt_after_ms,
                            self.oracle_max_future_ms)

    @classmethod
    def decode(cls, data: bytes) -> "GenesisConfig":
        return msgspec.msgpack.decode(data, type=cls)


FEE_ACCOUNT: Final = 0
INSURANCE_FUND: Final = 1
