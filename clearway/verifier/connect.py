"""Reaching an existing deployment from the command line: the vault at an address, a key
from a file, the genesis config from a file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
from eth_account import Account
from eth_account.signers.local import LocalAccount

from clearway.chain.backend import Chain
from clearway.chain.vault import VaultClient
from clearway.domain.genesis import GenesisConfig

KEY_PASSWORD_ENV = "CLEARWAY_KEY_PASSWORD"


def attach_vault(chain: Chain, address: str) -> VaultClient:
    """A :class:`VaultClient` for the vault deployed at ``address`` (its token read from
    the vault's ``token()``). ChainError if nothing answers there."""
    vault = chain.at("Vault", address)
    token = chain.at("Stablecoin", vault.call("token"))
    return VaultClient(chain, vault, token)


def load_key(path: Path | str) -> LocalAccount:
    """A private key from ``path``: either 32 bytes in hex (``0x…`` optional, surrounding
    whitespace ignored) or an Ethereum JSON keystore (v3) whose password is in the
    ``CLEARWAY_KEY_PASSWORD`` environment variable.

    Raises ValueError if the file holds neither, or the password is missing or wrong."""
    text = Path(path).read_text().strip()
    if text.startswith("{"):
        password = os.environ.get(KEY_PASSWORD_ENV)
        if password is None:
            raise ValueError(f"{path} is a keystore: set {KEY_PASSWORD_ENV}")
        return Account.from_key(Account.decrypt(json.loads(text), password))
    raw = text.removeprefix("0x")
    if len(raw) != 64:
        raise ValueError(f"{path}: expected a 32-byte hex private key or a JSON keystore")
    return Account.from_key(bytes.fromhex(raw))


def load_genesis(path: Path | str) -> GenesisConfig:
    """The genesis config from a JSON file (as ``clearway node --genesis`` reads it) or the
    MessagePack bytes of ``GenesisConfig.encode()``."""
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"{"):
        return msgspec.json.decode(data, type=GenesisConfig)
    return GenesisConfig.decode(data)
