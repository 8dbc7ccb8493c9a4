"""The vault contracts: sources, compilation, deployment on titanoboa, attestation signing.

Sources live in ``clearway/chain/contracts/*.vy`` (Vyper 0.4.3). Deployment here targets the
in-process EVM of titanoboa (``boa``), which is imported lazily so that code that only
needs attestation digests or compiled artefacts does not pay for it.

Attestation (EIP-712) signed by each verifier for batch ``n``::

    domain  = EIP712Domain(name="Clearway Vault", version="1", chainId, verifyingContract=vault)
    message = Attestation(uint64 batchNumber, bytes32 prevRoot, bytes32 newRoot,
                          bytes32 dataHash, bytes32 effectsHash)

``dataHash = keccak256(batch data)``; ``effectsHash`` binds the L1 effects of the batch
(:func:`clearway.commitment.batch_effects_hash`). The vault computes the digest when the
batch is submitted (``Vault.batch_digest(n)``) and counts a signature when it recovers to a
configured verifier not yet counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

from eth_abi import encode
from eth_account import Account
from eth_hash.auto import keccak

from clearway.commitment import (
    ForcedWithdrawalServed,
    Withdrawal,
    batch_data_hash,
    batch_effects_hash,
)

CONTRACTS_DIR = Path(__file__).with_name("contracts")
VYPER_VERSION = "0.4.3"

DEFAULT_FORCED_ACTION_DEADLINE = 7 * 24 * 3600
"""Seconds a forced withdrawal may stay unserved before anyone may freeze the vault."""

STABLECOIN_DECIMALS = 6

# Limits compiled into Vault.vy (keep in sync with its constants).
MAX_VERIFIERS = 32
MAX_BATCH_DATA = 65536
MAX_WITHDRAWALS_PER_BATCH = 64
MAX_FORCED_PER_BATCH = 32
MAX_POSITIONS = 64
MAX_SIZE_DECIMALS = 30
PACKED_VALUE_LIMIT = 2**119
"""``|settlement_price|`` and ``|funding_index|`` must be below this to be posted."""

EIP712_NAME = "Clearway Vault"
EIP712_VERSION = "1"
ATTESTATION_FIELDS = (
    {"name": "batchNumber", "type": "uint64"},
    {"name": "prevRoot", "type": "bytes32"},
    {"name": "newRoot", "type": "bytes32"},
    {"name": "dataHash", "type": "bytes32"},
    {"name": "effectsHash", "type": "bytes32"},
)
EIP712_DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ATTESTATION_TYPEHASH = keccak(
    b"Attestation(uint64 batchNumber,bytes32 prevRoot,bytes32 newRoot,bytes32 dataHash,"
    b"bytes32 effectsHash)"
)


# ============================================================================ sources


def contract_path(name: str) -> Path:
    """Path of ``contracts/<name>.vy``; ``FileNotFoundError`` if there is none."""
    path = CONTRACTS_DIR / f"{name}.vy"
    if not path.is_file():
        raise FileNotFoundError(f"no contract {name!r} in {CONTRACTS_DIR}")
    return path


@dataclass(frozen=True, slots=True)
class CompiledContract:
    """ABI and creation bytecode of a contract, for deployment on any EVM JSON-RPC chain."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes


# ============================================================================ disk cache

CACHE_DIR_ENV = "CLEARWAY_CACHE_DIR"
"""Environment variable that overrides the cache directory."""

CONTRACT_CACHE_FORMAT = 1
"""Bumped whenever what :func:`compile_contract` stores (or how it keys it) changes."""

_COMPILE_OUTPUTS = ("abi", "bytecode")


def cache_dir() -> Path:
    """The user cache directory of Clearway (created lazily by the writers).

    ``$CLEARWAY_CACHE_DIR`` if set and non-empty, else ``$XDG_CACHE_HOME/clearway``, else
    ``~/.cache/clearway`` (XDG Base Directory Specification, "XDG_CACHE_HOME").
    """
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "clearway"


def cached_json(kind: str, key: str, build: Callable[[], Any],
                valid: Callable[[Any], bool] = lambda _: True) -> Any:
    """``build()``'s JSON-serialisable result, memoised on disk under ``<cache_dir>/<kind>/<key>.json``.

    ``key`` must be a digest of everything that can change the result (the caller's job):
    entries are never invalidated otherwise. An entry that cannot be read, is not JSON, was
    written under another key, or fails ``valid`` is ignored and rebuilt. Writes are atomic
    (temporary file in the same directory, then ``os.replace``), so concurrent processes
    see either nothing or a whole entry; a cache that cannot be written (read-only or full
    disk) only costs the rebuild.
    """
    path = cache_dir() / kind / f"{key}.json"
    try:
        entry = json.loads(path.read_bytes())
        if isinstance(entry, dict) and entry.get("key") == key and valid(entry.get("value")):
            return entry["value"]
    except (OSError, ValueError):
        pass
    value = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps({"key": key, "value": value}).encode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass
    return value


def contract_cache_key(name: str) -> str:
    """sha256 (hex) of what the compiled ``contracts/<name>.vy`` depends on.

    Covers the cache format, the contract's name and path, the bytes of every ``.vy`` /
    ``.vyi`` in ``contracts/`` (so a local import can never go stale), the vyper version and
    commit (which fix its built-in ``ethereum.ercs`` interfaces, default optimisation and
    EVM version), and the requested outputs. Compiler settings other than these come from
    the sources' pragmas, hence from their bytes.
    """
    import vyper

    path = contract_path(name)
    sources = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(CONTRACTS_DIR.iterdir())
        if p.suffix in (".vy", ".vyi")
    }
    material = {
        "format": CONTRACT_CACHE_FORMAT,
        "name": name,
        "path": str(path.resolve()),
        "sources": sources,
        "vyper": [vyper.__version__, getattr(vyper, "__commit__", "")],
        "outputs": list(_COMPILE_OUTPUTS),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _valid_compiled(value: Any) -> bool:
    if not (isinstance(value, dict) and isinstance(value.get("abi"), list)):
        return False
    code = value.get("bytecode")
    if not isinstance(code, str) or not code:
        return False
    try:
        bytes.fromhex(code)
    except ValueError:
        return False
    return True


@cache
def compile_contract(name: str) -> CompiledContract:
    """Compile ``contracts/<name>.vy`` with the installed vyper.

    Cached per process and on disk (:func:`cached_json`, kind ``"contracts"``, key
    :func:`contract_cache_key`), so a process pays vyper's 5-17 s only once per source
    and compiler version. ``FileNotFoundError`` if there is no such contract.
    """
    path = contract_path(name)

    def build() -> dict[str, Any]:
        from vyper import compile_code

        out = compile_code(path.read_text(), contract_path=str(path),
                           output_formats=list(_COMPILE_OUTPUTS))
        return {"abi": out["abi"], "bytecode": out["bytecode"].removeprefix("0x")}

    value = cached_json("contracts", contract_cache_key(name), build, _valid_compiled)
    return CompiledContract(name, value["abi"], bytes.fromhex(value["bytecode"]))


# ============================================================================ titanoboa


@cache
def deployer(name: str) -> Any:
    """A titanoboa deployer for ``contracts/<name>.vy`` (``boa.load_partial``, cached).

    ``deployer("Vault").deploy(*args)`` deploys; ``.at(address)`` attaches.
    """
    import boa

    return boa.load_partial(str(contract_path(name)))


def deploy_stablecoin(name: str = "Clearway Test USD", symbol: str = "cwUSD") -> Any:
    """Deploy the test stablecoin from ``boa.env.eoa``, which becomes its only minter."""
    return deployer("Stablecoin").deploy(name, symbol)


def deploy_vault(
    token: Any,
    sequencer: str,
    verifiers: list[str],
    threshold: int,
    genesis_config_hash: bytes,
    forced_action_deadline: int = DEFAULT_FORCED_ACTION_DEADLINE,
) -> Any:
    """Deploy the vault on titanoboa's current environment.

    Parameters
    ----------
    token : contract or address
        The stablecoin (6 decimals).
    sequencer : str
        The only address allowed to call ``submit_batch``.
    verifiers : list[str]
        1..32 distinct verifier signing addresses.
    threshold : int
        k, the number of distinct verifier signatures that finalise a batch.
    genesis_config_hash : bytes
        32 bytes; part of every state root.
    forced_action_deadline : int
        Seconds (default 7 days).
    """
    address = getattr(token, "address", token)
    return deployer("Vault").deploy(
        address, sequencer, list(verifiers), threshold, forced_action_deadline, genesis_config_hash
    )


def boa_chain_id() -> int:
    """Chain id of titanoboa's in-process EVM."""
    import boa

    return boa.env.evm.chain.chain_id


# ============================================================================ attestations


@dataclass(frozen=True, slots=True)
class Attestation:
    """What verifiers sign for batch ``batch_number`` (see module docstring)."""

    batch_number: int
    prev_root: bytes
    new_root: bytes
    data_hash: bytes
    effects_hash: bytes

    @classmethod
    def for_batch(
        cls,
        batch_number: int,
        prev_root: bytes,
        new_root: bytes,
        data: bytes,
        last_deposit_id: int,
        withdrawals: list[Withdrawal] | tuple[Withdrawal, ...] = (),
        forced_served: list[ForcedWithdrawalServed] | tuple[ForcedWithdrawalServed, ...] = (),
    ) -> Attestation:
        """The attestation of a batch from its data and effects (hashes computed here)."""
        return cls(
            batch_number,
            prev_root,
            new_root,
            batch_data_hash(data),
            batch_effects_hash(last_deposit_id, withdrawals, forced_served),
        )

    def message(self) -> dict[str, Any]:
        """The EIP-712 ``message`` object."""
        return {
            "batchNumber": self.batch_number,
            "prevRoot": self.prev_root,
            "newRoot": self.new_root,
            "dataHash": self.data_hash,
            "effectsHash": self.effects_hash,
        }

    def struct_hash(self) -> bytes:
        """``hashStruct(Attestation)`` per EIP-712."""
        return keccak(
            encode(
                ("bytes32", "uint64", "bytes32", "bytes32", "bytes32", "bytes32"),
                [
                    ATTESTATION_TYPEHASH,
                    self.batch_number,
                    self.prev_root,
                    self.new_root,
                    self.data_hash,
                    self.effects_hash,
                ],
            )
        )


@dataclass(frozen=True, slots=True)
class Signature:
    """An ECDSA signature as the vault takes it: ``(v, r, s)`` with ``v`` in {27, 28}."""

    v: int
    r: bytes
    s: bytes

    def as_tuple(self) -> tuple[int, bytes, bytes]:
        return (self.v, self.r, self.s)


def eip712_domain(chain_id: int, vault: str) -> dict[str, Any]:
    """The EIP-712 domain of the vault at ``vault`` on ``chain_id``."""
    return {
        "name": EIP712_NAME,
        "version": EIP712_VERSION,
        "chainId": chain_id,
        "verifyingContract": str(vault),
    }


def domain_separator(chain_id: int, vault: str) -> bytes:
    """``hashStruct(EIP712Domain)``; equals ``Vault.domain_separator()``."""
    return keccak(
        encode(
            ("bytes32", "bytes32", "bytes32", "uint256", "address"),
            [
                EIP712_DOMAIN_TYPEHASH,
                keccak(EIP712_NAME.encode()),
                keccak(EIP712_VERSION.encode()),
                chain_id,
                str(vault),
            ],
        )
    )


def attestation_digest(chain_id: int, vault: str, attestation: Attestation) -> bytes:
    """The 32-byte digest verifiers sign; equals ``Vault.batch_digest(n)`` once submitted."""
    return keccak(b"\x19\x01" + domain_separator(chain_id, vault) + attestation.struct_hash())


def attestation_typed_data(chain_id: int, vault: str, attestation: Attestation) -> dict[str, Any]:
    """Full EIP-712 typed data (for wallets and ``eth_account.messages.encode_typed_data``)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Attestation": list(ATTESTATION_FIELDS),
        },
        "primaryType": "Attestation",
        "domain": eip712_domain(chain_id, vault),
        "message": attestation.message(),
    }


def sign_attestation(
    private_key: bytes | str, chain_id: int, vault: str, attestation: Attestation
) -> Signature:
    """Sign ``attestation`` for the vault at ``vault`` with a verifier's key.

    Uses eth-account's EIP-712 implementation (``Account.sign_typed_data``); the digest it
    signs is :func:`attestation_digest` (a test checks both agree). Signatures are
    canonical (low ``s``), as the vault requires.
    """
    signed = Account.sign_typed_data(
        private_key, full_message=attestation_typed_data(chain_id, vault, attestation)
    )
    return Signature(signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def recover_attestation_signer(
    chain_id: int, vault: str, attestation: Attestation, signature: Signature
) -> str:
    """Address that produced ``signature`` over the attestation (checksummed)."""
    vrs = (signature.v, int.from_bytes(signature.r, "big"), int.from_bytes(signature.s, "big"))
    return Account._recover_hash(attestation_digest(chain_id, vault, attestation), vrs=vrs)
