"""Genesis configuration: everything a replay needs besides the commands.

Verifiers rebuild the state from this config (its hash is held by the vault) plus the
command stream. Defaults are the ones of exchange-rules.md.
"""

from __future__ import annotations

import hashlib

import msgspec

from clearway.domain.instruments import InstrumentSpec

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

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self)

    def config_hash(self) -> bytes:
        """SHA-256 of the canonical MessagePack encoding (field order is fixed)."""
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def decode(cls, data: bytes) -> "GenesisConfig":
        return msgspec.msgpack.decode(data, type=cls)


FEE_ACCOUNT = 0
INSURANCE_FUND = 1
