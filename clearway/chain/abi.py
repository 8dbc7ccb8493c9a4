"""Contract ABI: encoding calls and constructor arguments, decoding return values, events
and revert reasons, from the JSON ABI vyper emits. Used by both chain back ends, so a
contract behaves the same in-process and over JSON-RPC.

Sources: the Solidity ABI specification (https://docs.soliditylang.org/en/latest/abi-spec.html):
selector = first 4 bytes of keccak256("name(type,…)"); event topic 0 = keccak256 of the
event signature; indexed parameters are topics (static types only here), the others are
ABI-encoded in the data; a revert with a reason returns ``Error(string)`` (0x08c379a0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from clearway.chain.errors import ChainError, ChainErrorCode

ERROR_SELECTOR = keccak(b"Error(string)")[:4]
PANIC_SELECTOR = keccak(b"Panic(uint256)")[:4]


def abi_type(param: dict[str, Any]) -> str:
    """Canonical type string of an ABI parameter: tuples spelled ``(t1,t2)`` with their
    array suffix kept (``tuple[]`` → ``(address,uint256)[]``)."""
    kind = param["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(abi_type(c) for c in param["components"]) + ")" + kind[5:]
    return kind


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    mutating: bool


@dataclass(frozen=True, slots=True)
class EventAbi:
    name: str
    topic: bytes
    names: tuple[str, ...]
    types: tuple[str, ...]
    indexed: tuple[bool, ...]


class ContractAbi:
    """Functions and events of one contract's JSON ABI (no overloads: vyper has none)."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.functions: dict[str, Function] = {}
        self.events: dict[str, EventAbi] = {}
        self.events_by_topic: dict[bytes, EventAbi] = {}
        self.constructor_inputs: tuple[str, ...] = ()
        for entry in abi:
            if entry["type"] == "function":
                inputs = tuple(abi_type(p) for p in entry["inputs"])
                signature = f"{entry['name']}({','.join(inputs)})"
                self.functions[entry["name"]] = Function(
                    entry["name"], keccak(signature.encode())[:4], inputs,
                    tuple(abi_type(p) for p in entry.get("outputs", [])),
                    entry.get("stateMutability") not in ("view", "pure"),
                )
            elif entry["type"] == "event":
                types = tuple(abi_type(p) for p in entry["inputs"])
                event = EventAbi(entry["name"], keccak(f"{entry['name']}({','.join(types)})".encode()),
                                 tuple(p["name"] for p in entry["inputs"]), types,
                                 tuple(bool(p.get("indexed")) for p in entry["inputs"]))
                self.events[event.name] = event
                self.events_by_topic[event.topic] = event
            elif entry["type"] == "constructor":
                self.constructor_inputs = tuple(abi_type(p) for p in entry["inputs"])

    def function(self, name: str) -> Function:
        try:
            return self.functions[name]
        except KeyError:
            raise ChainError(ChainErrorCode.UNKNOWN_FUNCTION, f"no function {name!r}") from None

    def encode_call(self, name: str, args: tuple | list) -> bytes:
        """Selector + ABI-encoded arguments. Raises ChainError BAD_ARGUMENTS."""
        fn = self.function(name)
        return fn.selector + _encode(fn.inputs, args, name)

    def decode_call(self, name: str, calldata: bytes) -> tuple:
        """Arguments of a call to ``name`` from its calldata (selector checked).
        Raises ChainError BAD_ARGUMENTS if the calldata is not such a call."""
        fn = self.function(name)
        if bytes(calldata[:4]) != fn.selector:
            raise ChainError(ChainErrorCode.BAD_ARGUMENTS, f"calldata is not a call to {name}")
        try:
            values = decode(list(fn.inputs), bytes(calldata[4:]))
        except Exception as exc:
            raise ChainError(ChainErrorCode.BAD_ARGUMENTS, f"{name} calldata: {exc}") from None
        return tuple(_normalise(t, v) for t, v in zip(fn.inputs, values))

    def encode_constructor(self, args: tuple | list) -> bytes:
        return _encode(self.constructor_inputs, args, "constructor")

    def decode_output(self, name: str, data: bytes) -> Any:
        """Decoded return value: None, the single value, or a tuple for several."""
        fn = self.function(name)
        if not fn.outputs:
            return None
        values = decode(list(fn.outputs), data)
        values = tuple(_normalise(t, v) for t, v in zip(fn.outputs, values))
        return values[0] if len(values) == 1 else values

    def decode_event(self, topics: list[bytes], data: bytes) -> tuple[str, dict[str, Any]] | None:
        """``(name, args)`` of a log emitted by this contract, or None if unknown."""
        if not topics:
            return None
        event = self.events_by_topic.get(bytes(topics[0]))
        if event is None:
            return None
        data_types = [t for t, i in zip(event.types, event.indexed) if not i]
        data_values = iter(decode(data_types, data))
        indexed_topics = iter(topics[1:])
        args: dict[str, Any] = {}
        for name, kind, is_indexed in zip(event.names, event.types, event.indexed):
            if is_indexed:
                args[name] = _normalise(kind, decode([kind], bytes(next(indexed_topics)))[0])
            else:
                args[name] = _normalise(kind, next(data_values))
        return event.name, args


def _encode(types: tuple[str, ...], args: tuple | list, what: str) -> bytes:
    if len(args) != len(types):
        raise ChainError(ChainErrorCode.BAD_ARGUMENTS, f"{what} takes {len(types)} arguments, got {len(args)}")
    try:
        return encode(list(types), [_prepare(t, a) for t, a in zip(types, args)])
    except Exception as exc:  # eth_abi raises several encoding errors
        raise ChainError(ChainErrorCode.BAD_ARGUMENTS, f"{what}: {exc}") from None


def _prepare(kind: str, value: Any) -> Any:
    """Accept contract handles and addresses as hex strings for ``address`` parameters."""
    if kind == "address":
        return to_checksum_address(getattr(value, "address", value))
    if kind == "address[]":
        return [to_checksum_address(getattr(v, "address", v)) for v in value]
    return value


def _normalise(kind: str, value: Any) -> Any:
    if kind == "address":
        return to_checksum_address(value)
    return value


def revert_reason(output: bytes) -> str:
    """Human-readable reason of a revert's return data ('' if there is none)."""
    output = bytes(output or b"")
    if output[:4] == ERROR_SELECTOR:
        try:
            return decode(["string"], output[4:])[0]
        except Exception:
            return "malformed Error(string)"
    if output[:4] == PANIC_SELECTOR:
        try:
            return f"panic 0x{decode(['uint256'], output[4:])[0]:02x}"
        except Exception:
            return "malformed Panic(uint256)"
    return output.hex()
