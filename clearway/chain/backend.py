"""The chain interface, and its embedded implementation (titanoboa's in-process EVM).

A :class:`Chain` deploys contracts, sends transactions, makes calls, reads logs by block
range, reads a transaction's input, and (where the chain allows) travels in time. Two
implementations:

- :class:`EmbeddedChain` (this module): a private ``boa.Env`` (py-evm, Prague rules: boa
  0.2.8 builds its chain with py-evm's latest mainnet VM, ``PragueVM``). Every
  transaction is mined in its own block (block number + 1, timestamp unchanged unless
  ``time_travel``). Gas is computed as a real Prague transaction pays it (below).
- :class:`clearway.chain.rpc.RpcChain`: any EVM JSON-RPC node (anvil in tests).

Contract access goes through :class:`Contract` (ABI from ``contracts.compile_contract``),
so code and tests run unchanged on both.

Gas of an embedded transaction (what a receipt's ``gasUsed`` would say): ``max(21,000 +
calldata + creation + execution − refund, 21,000 + 10 · tokens)`` with calldata = 4 per
zero byte and 16 per non-zero byte, tokens = zero bytes + 4 · non-zero bytes (EIP-7623
floor), creation = 32,000 + 2 per initcode word (EIP-3860), refund ≤ one fifth
(EIP-3529); storage and accounts start cold for each transaction (EIP-2929) and SSTORE
prices use the values the previous transaction left (EIP-2200 "original value"). A test
checks these figures against anvil's receipts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from clearway.chain.abi import ContractAbi, revert_reason
from clearway.chain.errors import ChainError, ChainErrorCode

TX_BASE_GAS = 21_000
CREATE_GAS = 32_000


@dataclass(frozen=True, slots=True)
class Log:
    """A raw log: emitting contract (checksummed), topics and data, where it was mined."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    tx_hash: bytes
    log_index: int


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded log: event ``name`` and ``args`` by parameter name."""

    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: bytes
    log_index: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """A mined, successful transaction. ``gas_used`` as the chain charged it (gas units);
    ``calldata_bytes`` the transaction's input length; ``output`` the return data where
    the back end knows it (embedded), else b''."""

    tx_hash: bytes
    block_number: int
    gas_used: int
    calldata_bytes: int
    logs: tuple[Log, ...] = ()
    output: bytes = b""
    contract_address: str | None = None


def calldata_gas(data: bytes) -> tuple[int, int]:
    """``(standard, floor_tokens)`` of ``data``: 4/16 gas per zero/non-zero byte, and the
    EIP-7623 token count (zero bytes + 4 × non-zero bytes)."""
    zero = data.count(0)
    nonzero = len(data) - zero
    return 4 * zero + 16 * nonzero, zero + 4 * nonzero


def transaction_gas(data: bytes, execution: int, refund: int = 0, create: bool = False) -> int:
    """Gas a Prague transaction with input ``data`` and ``execution`` gas is charged
    (formula in the module docstring)."""
    standard, tokens = calldata_gas(data)
    used = TX_BASE_GAS + standard + execution
    if create:
        used += CREATE_GAS + 2 * ((len(data) + 31) // 32)
    used -= min(refund, used // 5)
    return max(used, TX_BASE_GAS + 10 * tokens)


class Chain:
    """What Clearway needs from an EVM chain (see the module docstring). Subclasses
    implement the underscored primitives; addresses are checksummed strings."""

    name = "chain"
    chain_id: int
    supports_time_travel = False

    # -- accounts --------------------------------------------------------------------
    def new_account(self, label: str = "") -> LocalAccount:
        """A new key pair whose address holds enough ether for gas."""
        raise NotImplementedError

    # -- contracts -------------------------------------------------------------------
    def deploy(self, name: str, *args: Any, sender: LocalAccount) -> "Contract":
        """Deploy ``contracts/<name>.vy`` with constructor ``args`` from ``sender``."""
        from clearway.chain.contracts import compile_contract

        compiled = compile_contract(name)
        abi = ContractAbi(compiled.abi)
        receipt = self._send(None, compiled.bytecode + abi.encode_constructor(args), sender, f"deploy {name}")
        return Contract(self, receipt.contract_address, abi, name, receipt)

    def at(self, name: str, address: str) -> "Contract":
        """A handle on an already deployed ``contracts/<name>.vy``."""
        from clearway.chain.contracts import compile_contract

        return Contract(self, to_checksum_address(address), ContractAbi(compile_contract(name).abi), name)

    # -- primitives ------------------------------------------------------------------
    def _send(self, to: str | None, data: bytes, sender: LocalAccount, what: str) -> Receipt:
        raise NotImplementedError

    def _call(self, to: str, data: bytes, sender: str | None = None) -> bytes:
        raise NotImplementedError

    def get_logs(self, address: str, from_block: int, to_block: int, topic0: bytes | None = None) -> list[Log]:
        """Logs of ``address`` mined in blocks ``from_block..to_block`` (inclusive), in
        chain order, optionally only those whose first topic is ``topic0``."""
        raise NotImplementedError

    def block_number(self) -> int:
        """Number of the latest mined block."""
        raise NotImplementedError

    def timestamp(self) -> int:
        """Timestamp (s) the next transaction executes at (latest block's on RPC chains)."""
        raise NotImplementedError

    def time_travel(self, seconds: int) -> None:
        """Move the chain's clock forward. ChainError TIME_TRAVEL_UNSUPPORTED if it cannot."""
        raise ChainError(ChainErrorCode.TIME_TRAVEL_UNSUPPORTED, f"{self.name} cannot travel in time")

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks (for confirmations)."""
        raise NotImplementedError

    def transaction_input(self, tx_hash: bytes) -> bytes:
        """The input (calldata) of a mined transaction."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class Contract:
    """A deployed contract on a :class:`Chain`: ``call`` (read-only), ``transact``
    (mined transaction; ChainError REVERTED with the contract's reason), ``events``."""

    def __init__(self, chain: Chain, address: str, abi: ContractAbi, name: str = "",
                 deployment: Receipt | None = None) -> None:
        self.chain = chain
        self.address = address
        self.abi = abi
        self.name = name
        self.deployment = deployment

    def call(self, function: str, *args: Any) -> Any:
        data = self.abi.encode_call(function, args)
        return self.abi.decode_output(function, self.chain._call(self.address, data))

    def transact(self, function: str, *args: Any, sender: LocalAccount) -> Receipt:
        data = self.abi.encode_call(function, args)
        return self.chain._send(self.address, data, sender, f"{self.name}.{function}")

    def calldata(self, function: str, *args: Any) -> bytes:
        return self.abi.encode_call(function, args)

    def events(self, name: str | None = None, from_block: int = 0, to_block: int | None = None) -> list[Event]:
        """Decoded events of this contract (only ``name`` if given), in chain order."""
        to_block = self.chain.block_number() if to_block is None else to_block
        topic0 = self.abi.events[name].topic if name is not None else None
        out = []
        for log in self.chain.get_logs(self.address, from_block, to_block, topic0):
            decoded = self.abi.decode_event(list(log.topics), log.data)
            if decoded is not None:
                out.append(Event(decoded[0], decoded[1], log.block_number, log.tx_hash, log.log_index))
        return out

    def receipt_events(self, receipt: Receipt, name: str | None = None) -> list[Event]:
        """Decoded events this contract emitted in ``receipt``."""
        out = []
        for log in receipt.logs:
            if log.address != self.address:
                continue
            decoded = self.abi.decode_event(list(log.topics), log.data)
            if decoded is not None and (name is None or decoded[0] == name):
                out.append(Event(decoded[0], decoded[1], log.block_number, log.tx_hash, log.log_index))
        return out

    def __repr__(self) -> str:
        return f"<{self.name or 'contract'} at {self.address} on {self.chain.describe()}>"


# ============================================================================ embedded


@dataclass
class _Tx:
    sender: str
    to: str | None
    data: bytes
    block_number: int


class EmbeddedChain(Chain):
    """Titanoboa's in-process EVM behind the :class:`Chain` interface.

    Each instance owns a private ``boa.Env`` (independent of ``boa.env`` and of other
    instances). Keys from :meth:`new_account` are derived from ``seed`` and a counter, so
    runs are reproducible. Chain id: py-evm's mainnet default (1).
    """

    name = "embedded"
    supports_time_travel = True

    def __init__(self, seed: bytes = b"clearway") -> None:
        import boa

        self._env = boa.Env()
        self._seed = seed
        self._counter = itertools.count(1)
        self._logs: list[Log] = []
        self._txs: dict[bytes, _Tx] = {}
        self._nonces: dict[str, int] = {}
        self._block = 1
        self._env.evm.patch.block_number = self._block
        self.chain_id = self._env.evm.patch.chain_id

    def new_account(self, label: str = "") -> LocalAccount:
        key = keccak(self._seed + b"/" + label.encode() + b"/" + str(next(self._counter)).encode())
        account = Account.from_key(key)
        self._env.set_balance(account.address, 10**24)
        return account

    def _send(self, to: str | None, data: bytes, sender: LocalAccount, what: str) -> Receipt:
        env = self._env
        address = to_checksum_address(sender.address)
        # a transaction starts with cold accounts and slots, and storage "original values"
        # (EIP-2200) as the previous transaction left them: py-evm's per-transaction lock
        env.evm.vm.state.lock_changes()
        if to is None:
            created, computation = env.deploy(sender=address, bytecode=data)
        else:
            created, computation = None, env.execute_code(to_address=to, sender=address, data=data)
        if computation.is_error:
            reason = revert_reason(computation.output)
            raise ChainError(ChainErrorCode.REVERTED, f"{what} reverted: {reason}", reason)
        nonce = self._nonces.get(address, 0)
        self._nonces[address] = nonce + 1
        self._block += 1
        env.evm.patch.block_number = self._block
        tx_hash = keccak(address.encode() + nonce.to_bytes(8, "big") + data)
        gas = transaction_gas(data, computation.get_gas_used(), computation.get_gas_refund(), create=to is None)
        logs = []
        for i, (emitter, topics, payload) in enumerate(computation.get_log_entries()):
            logs.append(Log(to_checksum_address(emitter), tuple(t.to_bytes(32, "big") for t in topics),
                            bytes(payload), self._block, tx_hash, len(self._logs) + i))
        self._logs.extend(logs)
        self._txs[tx_hash] = _Tx(address, to, bytes(data), self._block)
        return Receipt(tx_hash, self._block, gas, len(data), tuple(logs), bytes(computation.output or b""),
                       to_checksum_address(str(created)) if created is not None else None)

    def _call(self, to: str, data: bytes, sender: str | None = None) -> bytes:
        computation = self._env.execute_code(to_address=to, sender=sender, data=data, is_modifying=False)
        if computation.is_error:
            reason = revert_reason(computation.output)
            raise ChainError(ChainErrorCode.REVERTED, f"call reverted: {reason}", reason)
        return bytes(computation.output)

    def get_logs(self, address: str, from_block: int, to_block: int, topic0: bytes | None = None) -> list[Log]:
        address = to_checksum_address(address)
        return [log for log in self._logs
                if log.address == address and from_block <= log.block_number <= to_block
                and (topic0 is None or (log.topics and log.topics[0] == topic0))]

    def block_number(self) -> int:
        return self._block

    def timestamp(self) -> int:
        return self._env.evm.patch.timestamp

    def time_travel(self, seconds: int) -> None:
        self._env.evm.patch.timestamp += seconds
        self.mine(1)

    def mine(self, blocks: int = 1) -> None:
        self._block += blocks
        self._env.evm.patch.block_number = self._block

    def transaction_input(self, tx_hash: bytes) -> bytes:
        try:
            return self._txs[bytes(tx_hash)].data
        except KeyError:
            raise ChainError(ChainErrorCode.RPC_ERROR, f"unknown transaction {bytes(tx_hash).hex()}") from None

    def balance(self, address: str) -> int:
        """Ether balance in wei."""
        return self._env.get_balance(address)


def open_chain(rpc_url: str | None = None, **kwargs: Any) -> Chain:
    """The embedded chain (``rpc_url`` None) or an :class:`~clearway.chain.rpc.RpcChain`."""
    if rpc_url is None:
        return EmbeddedChain(**kwargs)
    from clearway.chain.rpc import RpcChain

    return RpcChain(rpc_url, **kwargs)


@dataclass
class GasLog:
    """Gas of the transactions of one run, by label (e.g. "submit_batch")."""

    entries: list[tuple[str, int]] = field(default_factory=list)

    def add(self, label: str, receipt: Receipt) -> int:
        self.entries.append((label, receipt.gas_used))
        return receipt.gas_used

    def total(self, label: str) -> int:
        return sum(g for name, g in self.entries if name == label)

    def count(self, label: str) -> int:
        return sum(1 for name, _ in self.entries if name == label)
