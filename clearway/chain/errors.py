"""Chain errors with stable codes (7xxx: the chain layer's range; domain 1xxx–3xxx,
engine 4xxx–5xxx, commitment 6xxx)."""

from __future__ import annotations

from enum import IntEnum


class ChainErrorCode(IntEnum):
    # talking to a chain 70xx
    RPC_UNREACHABLE = 7001
    RPC_ERROR = 7002
    TX_TIMEOUT = 7003
    TIME_TRAVEL_UNSUPPORTED = 7004
    NO_FUNDED_ACCOUNT = 7005
    # contracts 71xx
    REVERTED = 7101
    UNKNOWN_FUNCTION = 7102
    BAD_ARGUMENTS = 7103
    # settlement 72xx
    BATCH_TOO_LARGE = 7201
    BATCH_CONFLICT = 7202
    NOT_ENOUGH_ATTESTATIONS = 7203
    REPLAY_MISMATCH = 7204
    DEPOSIT_REFUSED = 7205
    FROZEN = 7206
    SEQUENCER_LAGGING = 7207


class ChainError(Exception):
    """A chain operation failed. ``code`` (ChainErrorCode) is stable; ``reason`` is the
    contract's revert reason for REVERTED (e.g. "vault is frozen"), else ''."""

    def __init__(self, code: ChainErrorCode, message: str, reason: str = "") -> None:
        super().__init__(f"{code.name} ({int(code)}): {message}")
        self.code = code
        self.message = message
        self.reason = reason
