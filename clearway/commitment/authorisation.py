"""Order authorisation: how a batch proves who asked for each account command.

Every account command in a batch (place, TWAP, cancel, batch cancel, cancel-all, amend,
withdraw) carries an authorisation envelope (DESIGN.md "Trust model", "Order authorisation"):

``AuthKind.OPERATOR`` (operator-attested)
    The command came through an API-key session (HMAC, Deribit-style). Nothing in the
    batch lets a third party check it: verifiers count and report such commands, and
    trust the operator for them (it could have placed, cancelled or amended an order in
    the account's name; it can never move money out of the account to anyone but its
    owner, since withdrawals are paid to the owner's address).
``AuthKind.SIGNED``
    A 65-byte secp256k1 signature (``r ‖ s ‖ v``, ``v`` in {27, 28}) over the EIP-712
    typed message of the command (below), by the account's owner (or, once the domain has
    trading keys, a trading key the owner registered), plus the client's ``nonce``.
    Anyone can verify it from the batch alone.

EIP-712 domain (one per deployment)::

    EIP712Domain(string name, string version, uint256 chainId, address verifyingContract)
    name = "Clearway Exchange", version = "1", verifyingContract = the vault

Typed messages (``owner`` is the account's owner address, not the account index)::

    Order(address owner,uint32 instrument,int8 side,uint64 size,uint64 price,uint8 orderType,
          uint8 timeInForce,bool postOnly,bool reduceOnly,string clientOrderId,uint64 nonce)
    AdvancedOrder(address owner,uint32 instrument,int8 side,uint64 size,uint64 price,
          uint8 orderType,uint8 timeInForce,bool postOnly,bool reduceOnly,string clientOrderId,
          uint64 triggerPrice,uint8 trigger,uint64 displaySize,uint64 expireAt,uint64 nonce)
    Twap(address owner,uint32 instrument,int8 side,uint64 size,uint64 durationMs,
          uint64 intervalMs,uint32 priceTolerancePpm,uint64 limitPrice,bool reduceOnly,
          string clientOrderId,uint64 nonce)
    Cancel(address owner,uint64 orderId,string clientOrderId,uint64 nonce)
    CancelOrders(address owner,uint64[] orderIds,uint64 nonce)
    CancelAll(address owner,int64 instrument,uint64 nonce)
    Amend(address owner,uint64 orderId,uint64 size,uint64 price,uint64 nonce)
    Withdraw(address owner,uint64 amount,uint64 nonce)

A ``PlaceOrder`` has exactly one typed message, chosen by its content: ``Order`` when its
issue-9 fields (trigger price, trigger source, display size, good-til-time) are all zero,
``AdvancedOrder`` otherwise. ``Order`` is kept unchanged so that every order signed before
those fields existed (and every plain order since) keeps its digest; widening ``Order``
itself would have changed its type hash and invalidated them. Because the choice is a
function of the command, a sequencer that sets any of the four fields on a plain signed
order switches the message to ``AdvancedOrder`` (another type hash), and one that changes
or clears them on an advanced order changes its digest: either way the signature no longer
recovers to the owner. ``CancelOrders.orderIds`` is an EIP-712 array: its member is
``keccak(encodeData(id₀) ‖ encodeData(id₁) ‖ …)``, so the ids and their order are signed.

Units are the domain's (commands.py): sizes in lots, prices in micro-USDC per contract,
amounts in micro-USDC, ``expireAt`` / ``durationMs`` / ``intervalMs`` in milliseconds,
``trigger`` an orders.TriggerSource (1 mark, 2 index, 3 last trade). ``nonce`` is chosen by the client (a millisecond timestamp works);
verifiers accept each (owner, nonce) pair once, so a signed command cannot be replayed by
the sequencer. Source: EIP-712 (https://eips.ethereum.org/EIPS/eip-712).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable

from eth_abi import encode
from eth_hash.auto import keccak
from eth_keys import keys
from eth_keys.exceptions import BadSignature

from clearway.commitment.leaves import normalise_address
from clearway.domain.commands import (
    AmendOrder, CancelAll, CancelOrder, CancelOrders, Command, PlaceOrder, PlaceTwap, Withdraw,
)

EXCHANGE_EIP712_NAME = "Clearway Exchange"
EXCHANGE_EIP712_VERSION = "1"
SIGNATURE_BYTES = 65
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
)


class AuthKind(IntEnum):
    """How a command is authorised (one byte in the batch data)."""

    OPERATOR = 0
    SIGNED = 1


@dataclass(frozen=True, slots=True)
class Authorisation:
    """The envelope of one command: ``kind``, and for SIGNED the client's ``nonce`` and the
    65-byte signature ``r ‖ s ‖ v``.

    Raises ``ValueError`` on a SIGNED envelope without a 65-byte signature or with a nonce
    outside uint64, and on an OPERATOR envelope that carries either.
    """

    kind: AuthKind = AuthKind.OPERATOR
    nonce: int = 0
    signature: bytes = b""

    def __post_init__(self) -> None:
        if self.kind == AuthKind.SIGNED:
            if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_BYTES:
                raise ValueError("a signed authorisation needs a 65-byte signature")
            if not isinstance(self.nonce, int) or not 0 <= self.nonce < 2**64:
                raise ValueError("nonce must fit uint64")
        elif self.kind == AuthKind.OPERATOR:
            if self.signature or self.nonce:
                raise ValueError("an operator-attested command carries no nonce or signature")
        else:
            raise ValueError(f"unknown authorisation kind {self.kind!r}")


OPERATOR = Authorisation()
"""The operator-attested envelope (API-key session)."""


# ------------------------------------------------------------------------------ typed data

_Fields = tuple[tuple[str, str, Callable[[Any], Any]], ...]

_ORDER_FIELDS: _Fields = (
    ("instrument", "uint32", lambda c: c.instrument),
    ("side", "int8", lambda c: c.side),
    ("size", "uint64", lambda c: c.size),
    ("price", "uint64", lambda c: c.price),
    ("orderType", "uint8", lambda c: int(c.order_type)),
    ("timeInForce", "uint8", lambda c: int(c.tif)),
    ("postOnly", "bool", lambda c: bool(c.post_only)),
    ("reduceOnly", "bool", lambda c: bool(c.reduce_only)),
    ("clientOrderId", "string", lambda c: c.client_order_id),
)

_MESSAGES: dict[str, _Fields] = {
    "Order": _ORDER_FIELDS,
    "AdvancedOrder": _ORDER_FIELDS + (
        ("triggerPrice", "uint64", lambda c: c.trigger_price),
        ("trigger", "uint8", lambda c: int(c.trigger)),
        ("displaySize", "uint64", lambda c: c.display_size),
        ("expireAt", "uint64", lambda c: c.expire_at),
    ),
    "Twap": (
        ("instrument", "uint32", lambda c: c.instrument),
        ("side", "int8", lambda c: c.side),
        ("size", "uint64", lambda c: c.size),
        ("durationMs", "uint64", lambda c: c.duration_ms),
        ("intervalMs", "uint64", lambda c: c.interval_ms),
        ("priceTolerancePpm", "uint32", lambda c: c.price_tolerance_ppm),
        ("limitPrice", "uint64", lambda c: c.limit_price),
        ("reduceOnly", "bool", lambda c: bool(c.reduce_only)),
        ("clientOrderId", "string", lambda c: c.client_order_id),
    ),
    "Cancel": (
        ("orderId", "uint64", lambda c: c.order_id),
        ("clientOrderId", "string", lambda c: c.client_order_id),
    ),
    "CancelOrders": (("orderIds", "uint64[]", lambda c: list(c.order_ids)),),
    "CancelAll": (("instrument", "int64", lambda c: c.instrument),),
    "Amend": (
        ("orderId", "uint64", lambda c: c.order_id),
        ("size", "uint64", lambda c: c.size),
        ("price", "uint64", lambda c: c.price),
    ),
    "Withdraw": (("amount", "uint64", lambda c: c.amount),),
}

_PRIMARY: dict[type, str] = {
    PlaceOrder: "Order", PlaceTwap: "Twap", CancelOrder: "Cancel", CancelOrders: "CancelOrders",
    CancelAll: "CancelAll", AmendOrder: "Amend", Withdraw: "Withdraw",
}

SIGNABLE_COMMANDS = frozenset(_PRIMARY)
"""Command types that may carry a SIGNED authorisation."""


def primary_type(command: Command) -> str:
    """Name of the EIP-712 message that signs ``command`` (module docstring): its type's,
    except that a ``PlaceOrder`` using any issue-9 field is an ``AdvancedOrder``.
    KeyError if the command type is not signable."""
    name = _PRIMARY[type(command)]
    if name == "Order" and (command.trigger_price or command.trigger or command.display_size or command.expire_at):
        return "AdvancedOrder"
    return name


def _members(name: str) -> tuple[tuple[str, str], ...]:
    return (("owner", "address"), *((n, t) for n, t, _ in _MESSAGES[name]), ("nonce", "uint64"))


def type_string(message: type | str) -> str:
    """The EIP-712 ``encodeType`` string of a message, given by name (``"AdvancedOrder"``)
    or by signable command type (its plain message: ``PlaceOrder`` gives ``Order``), e.g.
    ``"Withdraw(address owner,uint64 amount,uint64 nonce)"``. KeyError if unknown."""
    name = message if isinstance(message, str) else _PRIMARY[message]
    return f"{name}({','.join(f'{t} {n}' for n, t in _members(name))})"


_TYPEHASH = {name: keccak(type_string(name).encode()) for name in _MESSAGES}


def exchange_domain(chain_id: int, vault: str) -> dict[str, Any]:
    """The EIP-712 domain of the exchange deployed with the vault at ``vault``."""
    return {"name": EXCHANGE_EIP712_NAME, "version": EXCHANGE_EIP712_VERSION,
            "chainId": chain_id, "verifyingContract": normalise_address(vault)}


def exchange_domain_separator(chain_id: int, vault: str) -> bytes:
    """``hashStruct(EIP712Domain)`` of :func:`exchange_domain`."""
    return keccak(encode(
        ("bytes32", "bytes32", "bytes32", "uint256", "address"),
        [keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
         keccak(EXCHANGE_EIP712_NAME.encode()), keccak(EXCHANGE_EIP712_VERSION.encode()),
         chain_id, normalise_address(vault)],
    ))


def command_struct_hash(command: Command, owner: str, nonce: int) -> bytes:
    """``hashStruct`` of the command's typed message (module docstring).

    Raises
    ------
    KeyError
        The command type is not signable.
    ValueError
        A field does not fit its EIP-712 type (such a command cannot carry a valid
        signature).
    """
    name = primary_type(command)
    types = ["bytes32", "address"]
    values: list[Any] = [_TYPEHASH[name], normalise_address(owner)]
    try:
        for _, abi_type, get in _MESSAGES[name]:
            value = get(command)
            if abi_type == "string":
                types.append("bytes32")
                values.append(keccak(value.encode()))
            elif abi_type.endswith("[]"):  # EIP-712 arrays: keccak of the members' encodeData
                types.append("bytes32")
                values.append(keccak(encode([abi_type[:-2]] * len(value), value)))
            else:
                types.append(abi_type)
                values.append(value)
        types.append("uint64")
        values.append(nonce)
        return keccak(encode(types, values))
    except Exception as exc:  # eth_abi raises several encoding errors
        raise ValueError(f"command does not fit its EIP-712 type: {exc}") from None


def command_digest(domain_separator: bytes, command: Command, owner: str, nonce: int) -> bytes:
    """The 32-byte EIP-712 digest ``keccak(0x1901 ‖ domainSeparator ‖ hashStruct)``."""
    return keccak(b"\x19\x01" + domain_separator + command_struct_hash(command, owner, nonce))


def typed_data(chain_id: int, vault: str, command: Command, owner: str, nonce: int) -> dict[str, Any]:
    """Full EIP-712 typed data of a command, for wallets (``eth_signTypedData_v4``)."""
    name = primary_type(command)
    message: dict[str, Any] = {"owner": normalise_address(owner)}
    for field_name, _, get in _MESSAGES[name]:
        message[field_name] = get(command)
    message["nonce"] = nonce
    return {
        "types": {
            "EIP712Domain": [{"name": n, "type": t} for n, t in DOMAIN_FIELDS],
            name: [{"name": n, "type": t} for n, t in _members(name)],
        },
        "primaryType": name,
        "domain": exchange_domain(chain_id, vault),
        "message": message,
    }


def sign_command(private_key: bytes, domain_separator: bytes, command: Command, owner: str,
                 nonce: int) -> Authorisation:
    """Sign ``command`` for ``owner`` with ``private_key`` (32 bytes); a SIGNED envelope
    with a canonical (low-s) signature."""
    digest = command_digest(domain_separator, command, owner, nonce)
    signature = keys.PrivateKey(private_key).sign_msg_hash(digest)
    v, r, s = signature.v + 27, signature.r, signature.s
    return Authorisation(AuthKind.SIGNED, nonce, r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v]))


def recover_signer(domain_separator: bytes, command: Command, owner: str, auth: Authorisation) -> str | None:
    """Checksummed address that signed ``command`` (as ``owner``'s) under ``auth``, or None
    when the signature is malformed, not canonical (high s) or does not recover. The
    caller compares the result with the owner (or its registered trading keys)."""
    if auth.kind != AuthKind.SIGNED:
        return None
    sig = auth.signature
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    v = sig[64]
    if v not in (27, 28) or not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2:
        return None
    try:
        digest = command_digest(domain_separator, command, owner, auth.nonce)
        public = keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValueError, KeyError):
        return None
    return public.to_checksum_address()
