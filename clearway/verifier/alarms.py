"""Alarms: what a verifier records when it refuses a batch (or sees the sequencer fail a
liveness duty), with stable codes.

A verifier checks a batch in stages (verifier.py); every failed check is a
:class:`Finding` (code, the command's sequence number where one is to blame, the accounts
it affects, a message). When a batch has findings the verifier refuses it and records one
:class:`Alarm` naming the *first diverging command* — the finding with the lowest sequence
number; findings without one (the posted state root or effects differ: the root commits
only the end of the batch, so the divergence lies somewhere in it) rank after every
command — and keeps the other findings as context.

Codes are a public interface (status output, logs, monitoring): never renumber, add at the
end of a group. Ranges: domain 1xxx–3xxx, engine 4xxx–5xxx, commitment 6xxx, chain 7xxx,
verifier 8xxx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class AlarmCode(IntEnum):
    # batch data 81xx: the data on L1 is not a batch that follows the verified chain
    UNDECODABLE = 8101
    DATA_HASH_MISMATCH = 8102
    WRONG_BATCH_NUMBER = 8103
    SEQUENCE_GAP = 8104
    PREV_ROOT_MISMATCH = 8105
    # authorisation 82xx: a SIGNED command that its account's owner did not sign
    BAD_SIGNATURE = 8201
    NONCE_REUSED = 8202
    # oracle 83xx: prices not from a quorum of signed reports
    ORACLE_NO_QUORUM = 8301
    ORACLE_MISSING = 8303
    ORACLE_REJECTED = 8304
    # L1 inclusion 84xx: deposits and forced withdrawals, in order and in time
    DEPOSIT_MISMATCH = 8401
    DEPOSIT_SKIPPED = 8402
    DEPOSIT_OVERDUE = 8403
    FORCED_OVERDUE = 8404
    FORCED_INVALID = 8405
    # replay 85xx: the replay with apply() does not give what the sequencer posted
    REPLAY_FAILED = 8501
    ROOT_MISMATCH = 8502
    EFFECTS_MISMATCH = 8503
    BUILT_ON_REFUSED = 8504
    HALTED = 8505


@dataclass(frozen=True, slots=True)
class AffectedAccount:
    """An account a finding concerns: its index (None when it does not exist yet, e.g. the
    owner of a skipped first deposit) and its owner (lower-case address, None if unknown)."""

    account: int | None
    owner: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "owner": self.owner}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "AffectedAccount":
        return cls(obj.get("account"), obj.get("owner"))


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed check. ``seq`` None: not attributable to one command (the end of the
    batch). ``all_accounts``: every account is affected (e.g. undecodable data: nobody's
    state after the batch can be known)."""

    code: AlarmCode
    message: str
    seq: int | None = None
    accounts: tuple[AffectedAccount, ...] = ()
    all_accounts: bool = False

    def rank(self) -> tuple[int, int]:
        """Sort key: findings at a command first, in command order."""
        return (0, self.seq) if self.seq is not None else (1, 0)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code.name, "seq": self.seq, "message": self.message,
                "accounts": [a.to_json() for a in self.accounts], "all_accounts": self.all_accounts}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Finding":
        return cls(AlarmCode[obj["code"]], obj["message"], obj.get("seq"),
                   tuple(AffectedAccount.from_json(a) for a in obj.get("accounts", ())), obj.get("all_accounts", False))


@dataclass(frozen=True, slots=True)
class Alarm:
    """A refused batch (or a liveness failure: FORCED_OVERDUE, DEPOSIT_OVERDUE).

    batch_number : int
        The refused batch (for FORCED_OVERDUE: the last batch the vault had).
    first : Finding
        The first diverging command (module docstring).
    others : tuple[Finding, ...]
        Every other finding of the same batch, in rank order.
    new_root : bytes
        The root the sequencer posted for the batch (b'' for liveness alarms): later
        batches built on it are refused too.
    block_number : int
        L1 block at which the verifier recorded it.
    """

    batch_number: int
    first: Finding
    others: tuple[Finding, ...] = ()
    new_root: bytes = b""
    block_number: int = 0

    @property
    def code(self) -> AlarmCode:
        return self.first.code

    @property
    def seq(self) -> int | None:
        return self.first.seq

    @property
    def accounts(self) -> tuple[AffectedAccount, ...]:
        return self.first.accounts

    @classmethod
    def from_findings(cls, batch_number: int, findings: list[Finding], new_root: bytes = b"",
                      block_number: int = 0) -> "Alarm":
        """The alarm of a batch with at least one finding (ValueError on none)."""
        if not findings:
            raise ValueError("an alarm needs at least one finding")
        ordered = sorted(findings, key=Finding.rank)
        return cls(batch_number, ordered[0], tuple(ordered[1:]), new_root, block_number)

    def describe(self) -> str:
        """One line: ``batch 7: BAD_SIGNATURE at seq 42 (accounts 5): …``."""
        where = f" at seq {self.seq}" if self.seq is not None else ""
        if self.first.all_accounts:
            who = " (all accounts)"
        elif self.accounts:
            who = " (accounts " + ", ".join(str(a.account if a.account is not None else a.owner)
                                           for a in self.accounts) + ")"
        else:
            who = ""
        return f"batch {self.batch_number}: {self.code.name}{where}{who}: {self.first.message}"

    def to_json(self) -> dict[str, Any]:
        return {"batch_number": self.batch_number, **self.first.to_json(),
                "others": [f.to_json() for f in self.others], "new_root": "0x" + self.new_root.hex(),
                "block_number": self.block_number}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Alarm":
        return cls(obj["batch_number"], Finding.from_json(obj), tuple(Finding.from_json(f) for f in obj["others"]),
                   bytes.fromhex(obj["new_root"][2:]), obj.get("block_number", 0))


@dataclass
class VerifierStats:
    """Counters over every verified (attested) batch.

    commands : all commands replayed; signed_commands / operator_attested : account
    commands with an EIP-712 signature / through an API-key session (trusted to the
    operator, DESIGN.md "Trust model"); oracle_updates / oracle_reports : the domain's
    oracle-update commands and the signed reports they carry (``apply()`` checks them);
    operator_prices : price commands signed by nobody; deposits,
    forced_served : L1 inclusions checked.
    """

    batches: int = 0
    commands: int = 0
    signed_commands: int = 0
    operator_attested: int = 0
    oracle_updates: int = 0
    oracle_reports: int = 0
    operator_prices: int = 0
    deposits: int = 0
    forced_served: int = 0
    trades: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "VerifierStats":
        known = {k: v for k, v in obj.items() if k in cls.__dataclass_fields__ and k != "extra"}
        extra = {k: v for k, v in obj.items() if k not in cls.__dataclass_fields__}
        return cls(**known, extra=extra)

    def add(self, other: "VerifierStats") -> None:
        for name in self.__dataclass_fields__:
            if name != "extra":
                setattr(self, name, getattr(self, name) + getattr(other, name))
