"""Batch data: the data-availability format of a batch (what ``Vault.submit_batch`` carries
as calldata and anyone can decode and replay with ``apply()``).

A batch is every command of a contiguous sequence range ``first_seq … first_seq + n − 1``
(rejected ones included: they consume sequence numbers), each with its authorisation
envelope (authorisation.py), plus the forced-withdrawal inclusions (forced.py).

Layout, version 2 (all integers are LEB128 varints, signed ones zigzag first; batch_codec.py)::

    header   "CWB" | version (1 byte) | compression (1 byte) | CRC-32 of body (4 bytes, BE)
    payload  compress(body)                          # Compression: NONE, DEFLATE, LZMA2

    body     batch_number, first_seq, count, first_ts, price_quantum, size_quantum,
             29 columns, each a length-prefixed blob (order of ``Column``),
             forced_count, then per inclusion: zigzag(request_id − previous − 1),
                                               seq − first_seq + 1 (0: served by no command)

Columns hold one field of one command kind, in command order, so that similar values sit
together before compression (column-wise and delta encoding, as in columnar stores):

- ``KIND``: one byte per command (``Kind``); ``TS``: zigzag(ts − previous ts), the first
  against ``first_ts`` (the sequencer stamps one ts per group: mostly 0).
- ``AUTH``: one byte (AuthKind) per signable command (place, TWAP, cancel, batch cancel,
  cancel-all, amend, withdraw); ``NONCE``: zigzag(nonce − ts) and ``SIG``: 65 raw bytes,
  per SIGNED one. Version 1 (still decoded) differs only here: TWAP and batch cancel were
  not signable, so they have no ``AUTH`` byte (they decode as operator-attested).
- Place: account, instrument, flags (bit 0 buy, 1 post-only, 2 reduce-only, bits 3–4
  order type, 5–7 time in force), size / size_quantum, zigzag((price − previous price of
  the same instrument in this batch) / price_quantum), client order id (length, bytes).
- Cancel: account, zigzag(order id − previous cancel's), client order id.
- Amend: account, zigzag(order id − previous amend's), size / size_quantum,
  zigzag((price − previous amend price) / price_quantum).
- Cancel-all: account, zigzag(instrument). Withdraw: account, amount.
- Deposit: owner (20 bytes), amount, zigzag(deposit id − previous deposit id − 1).
- ``GENERIC``: any other command, or one whose fields fall outside the compact ranges
  above (e.g. a rejected order with side 0): its ``encode_command`` MessagePack with seq
  and ts set to 0 (length, bytes). New domain command types are carried this way at once:
  ``PlaceTwap`` and ``CancelOrders`` (issue 9), and every ``PlaceOrder`` that uses a field
  the compact columns do not hold (trigger price and source, iceberg display size,
  good-til-time ``expire_at``; conditional order types 4–6 do not fit the flags either).

``price_quantum`` / ``size_quantum`` are the gcd of every compactly encoded price / size
(ticks and lot increments drop out). Decoding needs nothing but the bytes: no state, no
genesis. Replay needs the genesis config too (its hash is in every state root).

Size (measured by tests/commitment/test_batch.py and ``clearway chain selftest``): a batch
of 1,000 API-key trades (makers quoting, takers sending IOC orders, ~1,270 commands) takes
2.3–3.4 bytes per trade; a signed order adds its 65-byte signature and 1–2 bytes of nonce.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import msgspec

from clearway.commitment.authorisation import OPERATOR, SIGNABLE_COMMANDS, SIGNATURE_BYTES, Authorisation, AuthKind
from clearway.commitment.batch_codec import (
    BatchDecodeError, BatchEncodeError, BatchErrorCode, Compression, Reader, Writer, compress, decompress,
)
from clearway.domain.commands import (
    AmendOrder, CancelAll, CancelOrder, CancelOrders, Command, Deposit, PlaceOrder, PlaceTwap, Withdraw,
    decode_command, encode_command,
)

MAGIC = b"CWB"
VERSION = 2
_V1_SIGNABLE = SIGNABLE_COMMANDS - {PlaceTwap, CancelOrders}
"""Signable command types of version 1 batch data (before TWAP and batch cancel were)."""
HEADER_BYTES = len(MAGIC) + 1 + 1 + 4
MAX_BODY_BYTES = 16 << 20
"""Largest decompressed body accepted (a 64 KiB payload never legitimately exceeds it)."""
MAX_COMMANDS = 1 << 20
_U64 = 1 << 64
_ADDRESS = re.compile(r"0x[0-9a-f]{40}\Z")

__all__ = [
    "Batch", "BatchDecodeError", "BatchEncodeError", "BatchErrorCode", "Compression", "ForcedInclusion",
    "Kind", "decode_batch", "encode_batch",
]


class Kind(IntEnum):
    """Command kind byte of the ``KIND`` column."""

    GENERIC = 0
    PLACE = 1
    CANCEL = 2
    AMEND = 3
    CANCEL_ALL = 4
    DEPOSIT = 5
    WITHDRAW = 6


class Column(IntEnum):
    KIND = 0
    TS = 1
    AUTH = 2
    NONCE = 3
    SIG = 4
    P_ACCOUNT = 5
    P_INSTRUMENT = 6
    P_FLAGS = 7
    P_SIZE = 8
    P_PRICE = 9
    P_COID_LEN = 10
    P_COID = 11
    C_ACCOUNT = 12
    C_ORDER = 13
    C_COID_LEN = 14
    C_COID = 15
    A_ACCOUNT = 16
    A_ORDER = 17
    A_SIZE = 18
    A_PRICE = 19
    X_ACCOUNT = 20
    X_INSTRUMENT = 21
    D_OWNER = 22
    D_AMOUNT = 23
    D_ID = 24
    W_ACCOUNT = 25
    W_AMOUNT = 26
    G_LEN = 27
    G_DATA = 28


@dataclass(frozen=True, slots=True)
class ForcedInclusion:
    """A forced-withdrawal request (vault id ``request_id``) served by this batch.

    ``seq`` is the command that serves it (today a ``Withdraw`` of the requester's account;
    forced.py), or 0 when no command could (the requester has no account): the request is
    then served with amount 0.
    """

    request_id: int
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Batch:
    """The decoded content of one batch.

    batch_number : int
        The vault's batch number (1, 2, …).
    commands : tuple[Command, ...]
        Consecutive sequence numbers; empty for a batch that only serves forced requests.
    authorisations : tuple[Authorisation, ...]
        One per command (OPERATOR for commands nobody signs: deposits, operator commands).
    forced : tuple[ForcedInclusion, ...]
        Forced-withdrawal requests served, in the order the vault pays them.
    first_seq : int
        Sequence number of the first command (of the next one if there are none).
    """

    batch_number: int
    commands: tuple
    authorisations: tuple = ()
    forced: tuple = ()
    first_seq: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "commands", tuple(self.commands))
        auths = tuple(self.authorisations) or (OPERATOR,) * len(self.commands)
        object.__setattr__(self, "authorisations", auths)
        object.__setattr__(self, "forced", tuple(self.forced))
        if self.commands and not self.first_seq:
            object.__setattr__(self, "first_seq", self.commands[0].seq)

    @property
    def last_seq(self) -> int:
        """Sequence number of the last command (first_seq − 1 if there are none)."""
        return self.first_seq + len(self.commands) - 1


# ============================================================================ encoding


def _fits(*values: int) -> bool:
    return all(isinstance(v, int) and 0 <= v < _U64 for v in values)


def _compact_kind(c: Command) -> Kind:
    """The compact kind of ``c``, or GENERIC if a field falls outside the compact ranges."""
    t = type(c)
    if t is PlaceOrder:
        if (c.side in (1, -1) and 0 <= c.order_type <= 3 and 0 <= c.tif <= 7 and c.size > 0
                and _fits(c.account, c.instrument, c.size, c.price) and isinstance(c.post_only, bool)
                and isinstance(c.reduce_only, bool)
                and not (c.trigger_price or c.trigger or c.display_size or c.expire_at)):
            return Kind.PLACE
    elif t is CancelOrder:
        if _fits(c.account, c.order_id):
            return Kind.CANCEL
    elif t is AmendOrder:
        if c.size > 0 and _fits(c.account, c.order_id, c.size, c.price):
            return Kind.AMEND
    elif t is CancelAll:
        if _fits(c.account) and -_U64 < c.instrument < _U64:
            return Kind.CANCEL_ALL
    elif t is Deposit:
        if isinstance(c.owner, str) and _ADDRESS.match(c.owner) and _fits(c.amount, c.deposit_id):
            return Kind.DEPOSIT
    elif t is Withdraw:
        if _fits(c.account, c.amount):
            return Kind.WITHDRAW
    return Kind.GENERIC


def _coid(lengths: Writer, data: Writer, text: str) -> None:
    raw = text.encode()
    lengths.uint(len(raw))
    data.raw(raw)


def encode_batch(batch: Batch, compression: Compression | None = None) -> bytes:
    """Encode ``batch`` (format in the module docstring).

    ``compression`` None tries DEFLATE and LZMA2 and keeps the smaller output.

    Raises
    ------
    BatchEncodeError
        NOT_CONSECUTIVE (sequence numbers are not first_seq, first_seq + 1, …),
        AUTHORISATION_MISMATCH (not one envelope per command, or a signature on a command
        type nobody signs), UNENCODABLE (a field MessagePack cannot hold).
    """
    commands = batch.commands
    auths = batch.authorisations
    if len(auths) != len(commands):
        raise BatchEncodeError(BatchErrorCode.AUTHORISATION_MISMATCH,
                               f"{len(auths)} authorisations for {len(commands)} commands")
    for i, c in enumerate(commands):
        if c.seq != batch.first_seq + i:
            raise BatchEncodeError(BatchErrorCode.NOT_CONSECUTIVE,
                                   f"command {i} has seq {c.seq}, expected {batch.first_seq + i}")
    kinds = [_compact_kind(c) for c in commands]
    price_q = size_q = 0
    for c, k in zip(commands, kinds):
        if k in (Kind.PLACE, Kind.AMEND):
            price_q = math.gcd(price_q, c.price)
            size_q = math.gcd(size_q, c.size)
    price_q = price_q or 1
    size_q = size_q or 1

    col = {column: Writer() for column in Column}
    first_ts = commands[0].ts if commands else 0
    prev_ts = first_ts
    last_price: dict[int, int] = {}
    prev_cancel = prev_amend_order = prev_amend_price = prev_deposit = 0
    for c, k, auth in zip(commands, kinds, auths):
        col[Column.KIND].byte(k)
        col[Column.TS].sint(c.ts - prev_ts)
        prev_ts = c.ts
        if type(c) in SIGNABLE_COMMANDS:
            col[Column.AUTH].byte(auth.kind)
            if auth.kind == AuthKind.SIGNED:
                col[Column.NONCE].sint(auth.nonce - c.ts)
                col[Column.SIG].raw(auth.signature)
        elif auth.kind != AuthKind.OPERATOR:
            raise BatchEncodeError(BatchErrorCode.AUTHORISATION_MISMATCH,
                                   f"seq {c.seq}: {type(c).__name__} cannot carry a signature")
        if k == Kind.PLACE:
            col[Column.P_ACCOUNT].uint(c.account)
            col[Column.P_INSTRUMENT].uint(c.instrument)
            col[Column.P_FLAGS].byte((c.side > 0) | c.post_only << 1 | c.reduce_only << 2
                                     | int(c.order_type) << 3 | int(c.tif) << 5)
            col[Column.P_SIZE].uint(c.size // size_q)
            col[Column.P_PRICE].sint((c.price - last_price.get(c.instrument, 0)) // price_q)
            last_price[c.instrument] = c.price
            _coid(col[Column.P_COID_LEN], col[Column.P_COID], c.client_order_id)
        elif k == Kind.CANCEL:
            col[Column.C_ACCOUNT].uint(c.account)
            col[Column.C_ORDER].sint(c.order_id - prev_cancel)
            prev_cancel = c.order_id
            _coid(col[Column.C_COID_LEN], col[Column.C_COID], c.client_order_id)
        elif k == Kind.AMEND:
            col[Column.A_ACCOUNT].uint(c.account)
            col[Column.A_ORDER].sint(c.order_id - prev_amend_order)
            prev_amend_order = c.order_id
            col[Column.A_SIZE].uint(c.size // size_q)
            col[Column.A_PRICE].sint((c.price - prev_amend_price) // price_q)
            prev_amend_price = c.price
        elif k == Kind.CANCEL_ALL:
            col[Column.X_ACCOUNT].uint(c.account)
            col[Column.X_INSTRUMENT].sint(c.instrument)
        elif k == Kind.DEPOSIT:
            col[Column.D_OWNER].raw(bytes.fromhex(c.owner[2:]))
            col[Column.D_AMOUNT].uint(c.amount)
            col[Column.D_ID].sint(c.deposit_id - prev_deposit - 1)
            prev_deposit = c.deposit_id
        elif k == Kind.WITHDRAW:
            col[Column.W_ACCOUNT].uint(c.account)
            col[Column.W_AMOUNT].uint(c.amount)
        else:
            try:
                raw = encode_command(msgspec.structs.replace(c, seq=0, ts=0))
            except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
                raise BatchEncodeError(BatchErrorCode.UNENCODABLE, f"seq {c.seq}: {exc}") from None
            col[Column.G_LEN].uint(len(raw))
            col[Column.G_DATA].raw(raw)

    body = Writer()
    for value in (batch.batch_number, batch.first_seq, len(commands), first_ts, price_q, size_q):
        body.uint(value)
    for column in Column:
        body.blob(col[column].getvalue())
    body.uint(len(batch.forced))
    prev_request = 0
    for inclusion in batch.forced:
        body.sint(inclusion.request_id - prev_request - 1)
        prev_request = inclusion.request_id
        body.uint(inclusion.seq - batch.first_seq + 1 if inclusion.seq else 0)
    raw_body = body.getvalue()

    methods = [compression] if compression is not None else [Compression.DEFLATE, Compression.LZMA2]
    best = min(((compress(raw_body, m), m) for m in methods), key=lambda pair: len(pair[0]))
    header = MAGIC + bytes([VERSION, best[1]]) + zlib.crc32(raw_body).to_bytes(4, "big")
    return header + best[0]


# ============================================================================ decoding


def decode_batch(data: bytes) -> Batch:
    """Decode batch data; the inverse of :func:`encode_batch`.

    Never returns a partial batch: anything that is not exactly one well-formed batch
    raises :class:`BatchDecodeError` with a ``BatchErrorCode`` (too short, bad magic,
    unsupported version or compression, corrupt stream, body over 16 MiB, checksum
    mismatch, truncated or trailing bytes, invalid values or commands).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, "batch data must be bytes")
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise BatchDecodeError(BatchErrorCode.TOO_SHORT, f"{len(data)} bytes, the header alone is {HEADER_BYTES}")
    if data[:3] != MAGIC:
        raise BatchDecodeError(BatchErrorCode.BAD_MAGIC, f"starts with {data[:3].hex()}, not {MAGIC.hex()}")
    if data[3] not in (1, VERSION):
        raise BatchDecodeError(BatchErrorCode.UNSUPPORTED_VERSION, f"version {data[3]} (this decoder reads 1–{VERSION})")
    body = decompress(data[HEADER_BYTES:], data[4], MAX_BODY_BYTES)
    if zlib.crc32(body) != int.from_bytes(data[5:9], "big"):
        raise BatchDecodeError(BatchErrorCode.CHECKSUM_MISMATCH, "CRC-32 of the body does not match the header")
    return _decode_body(Reader(body, "body"), SIGNABLE_COMMANDS if data[3] == VERSION else _V1_SIGNABLE)


def _decode_body(r: Reader, signable: frozenset = SIGNABLE_COMMANDS) -> Batch:
    batch_number, first_seq, count, first_ts, price_q, size_q = (r.uint() for _ in range(6))
    if count > MAX_COMMANDS or price_q == 0 or size_q == 0:
        raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, "command count or quanta out of range")
    col = {column: Reader(r.blob(), column.name) for column in Column}
    forced_count = r.uint()
    if forced_count > MAX_COMMANDS:
        raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, "too many forced inclusions")
    forced = []
    prev_request = 0
    for _ in range(forced_count):
        request_id = prev_request + 1 + r.sint()
        offset = r.uint()
        if request_id < 1 or offset > count:
            raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, "forced inclusion out of range")
        forced.append(ForcedInclusion(request_id, first_seq + offset - 1 if offset else 0))
        prev_request = request_id
    r.expect_end()
    if col[Column.KIND].remaining() != count:
        raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, f"{col[Column.KIND].remaining()} kinds for {count} commands")

    commands: list[Command] = []
    auths: list[Authorisation] = []
    ts = first_ts
    last_price: dict[int, int] = {}
    prev_cancel = prev_amend_order = prev_amend_price = prev_deposit = 0
    for i in range(count):
        seq = first_seq + i
        kind = col[Column.KIND].byte()
        ts += col[Column.TS].sint()
        if ts < 0:
            raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, f"seq {seq}: negative timestamp")
        if kind == Kind.PLACE:
            account = col[Column.P_ACCOUNT].uint()
            instrument = col[Column.P_INSTRUMENT].uint()
            flags = col[Column.P_FLAGS].byte()
            size = col[Column.P_SIZE].uint() * size_q
            price = last_price.get(instrument, 0) + col[Column.P_PRICE].sint() * price_q
            last_price[instrument] = price
            coid = _read_coid(col[Column.P_COID_LEN], col[Column.P_COID])
            command: Command = PlaceOrder(seq, ts, account, instrument, 1 if flags & 1 else -1, size, price,
                                          (flags >> 3) & 3, flags >> 5, bool(flags & 2), bool(flags & 4), coid)
        elif kind == Kind.CANCEL:
            account = col[Column.C_ACCOUNT].uint()
            prev_cancel += col[Column.C_ORDER].sint()
            command = CancelOrder(seq, ts, account, prev_cancel, _read_coid(col[Column.C_COID_LEN], col[Column.C_COID]))
        elif kind == Kind.AMEND:
            account = col[Column.A_ACCOUNT].uint()
            prev_amend_order += col[Column.A_ORDER].sint()
            size = col[Column.A_SIZE].uint() * size_q
            prev_amend_price += col[Column.A_PRICE].sint() * price_q
            command = AmendOrder(seq, ts, account, prev_amend_order, size, prev_amend_price)
        elif kind == Kind.CANCEL_ALL:
            command = CancelAll(seq, ts, col[Column.X_ACCOUNT].uint(), col[Column.X_INSTRUMENT].sint())
        elif kind == Kind.DEPOSIT:
            owner = "0x" + col[Column.D_OWNER].raw(20).hex()
            amount = col[Column.D_AMOUNT].uint()
            prev_deposit += 1 + col[Column.D_ID].sint()
            command = Deposit(seq, ts, owner, amount, prev_deposit)
        elif kind == Kind.WITHDRAW:
            command = Withdraw(seq, ts, col[Column.W_ACCOUNT].uint(), col[Column.W_AMOUNT].uint())
        elif kind == Kind.GENERIC:
            raw = col[Column.G_DATA].raw(col[Column.G_LEN].uint())
            try:
                command = msgspec.structs.replace(decode_command(raw), seq=seq, ts=ts)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, OverflowError) as exc:
                # ValueError covers UnicodeDecodeError, which msgspec lets through for bad str bytes
                raise BatchDecodeError(BatchErrorCode.INVALID_COMMAND, f"seq {seq}: {exc}") from None
        else:
            raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, f"seq {seq}: unknown command kind {kind}")
        if kind in (Kind.PLACE, Kind.AMEND) and (command.price < 0 or command.price >= _U64):
            raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, f"seq {seq}: price out of range")
        auths.append(_read_auth(col, command, ts, signable))
        commands.append(command)
    for reader in col.values():
        reader.expect_end()
    for inclusion in forced:
        if inclusion.seq and not first_seq <= inclusion.seq < first_seq + count:
            raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, "forced inclusion names a command outside the batch")
    return Batch(batch_number, tuple(commands), tuple(auths), tuple(forced), first_seq)


def _read_coid(lengths: Reader, data: Reader) -> str:
    raw = data.raw(lengths.uint())
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, "client order id is not UTF-8") from None


def _read_auth(col: dict[Column, Reader], command: Command, ts: int, signable: frozenset) -> Authorisation:
    if type(command) not in signable:
        return OPERATOR
    kind = col[Column.AUTH].byte()
    if kind == AuthKind.OPERATOR:
        return OPERATOR
    if kind != AuthKind.SIGNED:
        raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, f"seq {command.seq}: unknown authorisation kind {kind}")
    nonce = ts + col[Column.NONCE].sint()
    signature = col[Column.SIG].raw(SIGNATURE_BYTES)
    if not 0 <= nonce < _U64:
        raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, f"seq {command.seq}: nonce out of range")
    return Authorisation(AuthKind.SIGNED, nonce, signature)


def batch_of(batch_number: int, commands: Sequence[Command], authorisations: Sequence[Authorisation] = (),
             forced: Sequence[ForcedInclusion] = (), first_seq: int | None = None) -> Batch:
    """Convenience constructor: ``Batch`` with ``first_seq`` from the first command (or
    given, for an empty batch)."""
    if first_seq is None:
        first_seq = commands[0].seq if commands else 1
    return Batch(batch_number, tuple(commands), tuple(authorisations), tuple(forced), first_seq)
