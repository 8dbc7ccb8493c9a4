"""Any EVM chain over JSON-RPC (HTTP), behind the :class:`~clearway.chain.backend.Chain`
interface. Tested against anvil (``.ci/anvil.sh``).

Transactions are EIP-1559 (type 2), signed locally with eth-account (``LocalAccount``) and
sent with ``eth_sendRawTransaction``; gas is ``eth_estimateGas`` × 1.2 (a revert found by
the estimate is raised as ChainError REVERTED with the contract's reason, nothing is
sent); the fee cap is 2 × the latest base fee + the priority fee. ``gas_used`` comes from
the receipt. New accounts get ether from ``anvil_setBalance`` when the node has it, else
by a transfer from ``funder`` (a funded key) or from the node's first unlocked account.

Methods used: eth_chainId, eth_blockNumber, eth_getBlockByNumber, eth_getTransactionCount,
eth_estimateGas, eth_maxPriorityFeePerGas, eth_sendRawTransaction, eth_sendTransaction,
eth_getTransactionReceipt, eth_getTransactionByHash, eth_call, eth_getLogs, eth_accounts;
on dev nodes also anvil_setBalance, evm_increaseTime, evm_mine, anvil_mine.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from clearway.chain.abi import revert_reason
from clearway.chain.backend import Chain, Log, Receipt
from clearway.chain.errors import ChainError, ChainErrorCode

FUNDING_WEI = 100 * 10**18
GAS_MARGIN_PERCENT = 120


class JsonRpc:
    """A minimal JSON-RPC 2.0 client over HTTP (urllib; one request per call).

    ``request(method, params)`` returns the ``result``; an ``error`` object raises
    :class:`RpcError` (ChainError RPC_ERROR with the node's ``code`` and ``data``), a
    connection failure ChainError RPC_UNREACHABLE.
    """

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self._ids = itertools.count(1)

    def request(self, method: str, params: list | None = None) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []})
        req = urllib.request.Request(self.url, body.encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                reply = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ChainError(ChainErrorCode.RPC_UNREACHABLE, f"{self.url}: {exc}") from None
        if reply.get("error"):
            error = reply["error"]
            raise RpcError(method, error.get("code"), error.get("message", ""), error.get("data"))
        return reply.get("result")


class RpcError(ChainError):
    """The node answered with a JSON-RPC error (``rpc_code``, ``rpc_message``, ``data``)."""

    def __init__(self, method: str, code: int | None, message: str, data: Any) -> None:
        super().__init__(ChainErrorCode.RPC_ERROR, f"{method}: {code} {message}")
        self.rpc_code = code
        self.rpc_message = message
        self.data = data


def _int(value: str | int | None) -> int:
    return value if isinstance(value, int) else int(value or "0x0", 16)


def _bytes(value: str | None) -> bytes:
    return bytes.fromhex((value or "0x")[2:])


class RpcChain(Chain):
    """An EVM node at ``url`` (module docstring).

    Parameters
    ----------
    url : str
        ``http://…`` JSON-RPC endpoint.
    funder : LocalAccount | str | None
        Key that pays ether to new accounts when the node has no ``anvil_setBalance``
        (default: the node's first unlocked account, as dev nodes have).
    poll_interval, timeout : float
        Receipt polling (s).
    """

    name = "rpc"

    def __init__(self, url: str, funder: LocalAccount | str | None = None, poll_interval: float = 0.02,
                 timeout: float = 120.0) -> None:
        self.url = url
        self.rpc = JsonRpc(url)
        self.chain_id = _int(self.rpc.request("eth_chainId"))
        self.funder = Account.from_key(funder) if isinstance(funder, str) else funder
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._nonces: dict[str, int] = {}
        self._set_balance: bool | None = None
        self.supports_time_travel = self._probe_time_travel()

    def describe(self) -> str:
        return f"rpc {self.url} (chain id {self.chain_id})"

    # -- accounts --------------------------------------------------------------------
    def new_account(self, label: str = "") -> LocalAccount:
        account = Account.create()
        self.fund(account.address, FUNDING_WEI)
        return account

    def fund(self, address: str, wei: int) -> None:
        """Give ``address`` ``wei`` ether (anvil_setBalance, else a transfer)."""
        if self._set_balance is not False:
            try:
                self.rpc.request("anvil_setBalance", [address, hex(wei)])
                self._set_balance = True
                return
            except RpcError:
                self._set_balance = False
        if self.funder is not None:
            self._send(address, b"", self.funder, "funding", value=wei)
            return
        unlocked = self.rpc.request("eth_accounts") or []
        if not unlocked:
            raise ChainError(ChainErrorCode.NO_FUNDED_ACCOUNT, f"{self.url} has no unlocked account and no funder")
        tx_hash = self.rpc.request("eth_sendTransaction", [{"from": unlocked[0], "to": address, "value": hex(wei)}])
        self._wait(_bytes(tx_hash), "funding")

    # -- transactions ----------------------------------------------------------------
    def _send(self, to: str | None, data: bytes, sender: LocalAccount, what: str, value: int = 0) -> Receipt:
        address = to_checksum_address(sender.address)
        tx: dict[str, Any] = {"from": address, "data": "0x" + data.hex(), "value": hex(value)}
        if to is not None:
            tx["to"] = to
        try:
            estimate = _int(self.rpc.request("eth_estimateGas", [tx]))
        except RpcError as exc:
            reason = _revert_reason_of(exc)
            raise ChainError(ChainErrorCode.REVERTED, f"{what} reverted: {reason}", reason) from None
        base_fee = _int(self.rpc.request("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"])
        try:
            tip = _int(self.rpc.request("eth_maxPriorityFeePerGas"))
        except RpcError:
            tip = 10**9
        nonce = self._nonces.get(address)
        if nonce is None:
            nonce = _int(self.rpc.request("eth_getTransactionCount", [address, "pending"]))
        signed = sender.sign_transaction({
            "type": 2, "chainId": self.chain_id, "nonce": nonce, "to": to or "", "value": value, "data": data,
            "gas": estimate * GAS_MARGIN_PERCENT // 100, "maxFeePerGas": 2 * base_fee + tip,
            "maxPriorityFeePerGas": tip,
        })
        try:
            tx_hash = self.rpc.request("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
        except ChainError:
            self._nonces.pop(address, None)
            raise
        self._nonces[address] = nonce + 1
        return self._wait(_bytes(tx_hash), what, data)

    def _wait(self, tx_hash: bytes, what: str, data: bytes = b"") -> Receipt:
        deadline = time.monotonic() + self.timeout
        while True:
            receipt = self.rpc.request("eth_getTransactionReceipt", ["0x" + tx_hash.hex()])
            if receipt is not None:
                break
            if time.monotonic() > deadline:
                raise ChainError(ChainErrorCode.TX_TIMEOUT, f"{what}: no receipt for 0x{tx_hash.hex()}")
            time.sleep(self.poll_interval)
        if _int(receipt.get("status")) != 1:
            raise ChainError(ChainErrorCode.REVERTED, f"{what} reverted on chain (0x{tx_hash.hex()})", "")
        block = _int(receipt["blockNumber"])
        logs = tuple(self._log(entry) for entry in receipt.get("logs", []))
        created = receipt.get("contractAddress")
        return Receipt(tx_hash, block, _int(receipt["gasUsed"]), len(data), logs, b"",
                       to_checksum_address(created) if created else None)

    @staticmethod
    def _log(entry: dict[str, Any]) -> Log:
        return Log(to_checksum_address(entry["address"]), tuple(_bytes(t) for t in entry["topics"]),
                   _bytes(entry["data"]), _int(entry["blockNumber"]), _bytes(entry["transactionHash"]),
                   _int(entry["logIndex"]))

    def _call(self, to: str, data: bytes, sender: str | None = None) -> bytes:
        tx = {"to": to, "data": "0x" + data.hex()}
        if sender:
            tx["from"] = sender
        try:
            return _bytes(self.rpc.request("eth_call", [tx, "latest"]))
        except RpcError as exc:
            reason = _revert_reason_of(exc)
            raise ChainError(ChainErrorCode.REVERTED, f"call reverted: {reason}", reason) from None

    # -- reading ---------------------------------------------------------------------
    def get_logs(self, address: str, from_block: int, to_block: int, topic0: bytes | None = None) -> list[Log]:
        if to_block < from_block:
            return []
        query: dict[str, Any] = {"address": to_checksum_address(address), "fromBlock": hex(from_block),
                                 "toBlock": hex(to_block)}
        if topic0 is not None:
            query["topics"] = ["0x" + topic0.hex()]
        entries = self.rpc.request("eth_getLogs", [query]) or []
        return sorted((self._log(e) for e in entries), key=lambda log: (log.block_number, log.log_index))

    def block_number(self) -> int:
        return _int(self.rpc.request("eth_blockNumber"))

    def timestamp(self) -> int:
        return _int(self.rpc.request("eth_getBlockByNumber", ["latest", False])["timestamp"])

    def transaction_input(self, tx_hash: bytes) -> bytes:
        tx = self.rpc.request("eth_getTransactionByHash", ["0x" + bytes(tx_hash).hex()])
        if tx is None:
            raise ChainError(ChainErrorCode.RPC_ERROR, f"unknown transaction 0x{bytes(tx_hash).hex()}")
        return _bytes(tx.get("input") or tx.get("data"))

    # -- dev-node controls -----------------------------------------------------------
    def _probe_time_travel(self) -> bool:
        try:
            self.rpc.request("evm_increaseTime", [0])
            return True
        except RpcError:
            return False

    def time_travel(self, seconds: int) -> None:
        if not self.supports_time_travel:
            super().time_travel(seconds)
        self.rpc.request("evm_increaseTime", [seconds])
        self.mine(1)

    def mine(self, blocks: int = 1) -> None:
        try:
            self.rpc.request("anvil_mine", [hex(blocks)])
        except RpcError:
            for _ in range(blocks):
                self.rpc.request("evm_mine")


def _revert_reason_of(exc: RpcError) -> str:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x") and len(data) > 2:
        return revert_reason(_bytes(data))
    message = exc.rpc_message or ""
    return message.removeprefix("execution reverted: ").removeprefix("execution reverted")
