"""Authentication: wallet-bound API keys, HMAC request signatures, access tokens, replay
protection.

Accounts are Ethereum addresses. The owner of an address creates (and revokes) API keys
by signing an EIP-712 message (https://eips.ethereum.org/EIPS/eip-712) with the address's
key; the server answers with a ``client_id`` and a ``client_secret``. A key trades for
its owner's account; it can never withdraw (withdrawals need the owner's own signature,
methods.py).

EIP-712 domain: ``EIP712Domain(string name,string version,uint256 chainId)`` with
name "Clearway API", version "1" and the deployment's chain id. Messages::

    CreateApiKey(address owner,string name,string scope,uint64 timestamp,uint64 nonce)
    RevokeApiKey(address owner,string clientId,uint64 timestamp,uint64 nonce)

``timestamp`` is in ms and must be within ``window_ms`` of the server's clock; each
(owner, nonce) is accepted once within that window, so a signed request cannot be
replayed.

Using a key (Deribit's schemes, https://docs.deribit.com "Authentication"):

- REST: header ``Authorization: deri-hmac-sha256 id=ClientId,ts=Timestamp,sig=Signature,
  nonce=Nonce`` with Signature = hex HMAC-SHA256(ClientSecret, Timestamp + "\\n" + Nonce +
  "\\n" + METHOD + "\\n" + URI + "\\n" + Body + "\\n"), URI = path and query as sent;
- ``public/auth`` with ``grant_type`` = ``client_signature`` (Signature = HMAC(ClientSecret,
  Timestamp + "\\n" + Nonce + "\\n" + Data)), ``client_credentials`` (the secret itself)
  or ``refresh_token``; the answer's access token authenticates a WebSocket connection
  (for its lifetime) or REST calls (``Authorization: bearer <token>``).

Signed requests must carry a timestamp within ``window_ms`` of the server's clock, and a
(client id, timestamp, nonce, signature) is accepted once: replays are refused (13009).
A revoked key stops working at once, including the tokens and connections it opened.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from eth_account import Account
from eth_account.messages import encode_typed_data

from clearway.api.errors import ApiError, INVALID_CREDENTIALS, UNAUTHORIZED, invalid_params, unauthorized

API_EIP712_NAME = "Clearway API"
API_EIP712_VERSION = "1"
SCOPES = ("trade", "read")
TOKEN_LIFETIME_S = 900
MAX_KEYS_PER_OWNER = 32

CREATE_KEY_TYPE = [
    {"name": "owner", "type": "address"},
    {"name": "name", "type": "string"},
    {"name": "scope", "type": "string"},
    {"name": "timestamp", "type": "uint64"},
    {"name": "nonce", "type": "uint64"},
]
REVOKE_KEY_TYPE = [
    {"name": "owner", "type": "address"},
    {"name": "clientId", "type": "string"},
    {"name": "timestamp", "type": "uint64"},
    {"name": "nonce", "type": "uint64"},
]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def normalise_address(value: object, param: str = "owner") -> str:
    """Lower-case ``0x``-prefixed 20-byte hex; -32602 otherwise."""
    if not isinstance(value, str) or len(value) != 42 or not value.startswith(("0x", "0X")):
        raise invalid_params(param, "not a 20-byte hex address")
    try:
        int(value[2:], 16)
    except ValueError:
        raise invalid_params(param, "not a 20-byte hex address") from None
    return "0x" + value[2:].lower()


def api_key_typed_data(chain_id: int, primary: str, message: dict[str, Any]) -> dict[str, Any]:
    """Full EIP-712 typed data (``eth_signTypedData_v4``) of a CreateApiKey or RevokeApiKey
    message."""
    types = {"CreateApiKey": CREATE_KEY_TYPE, "RevokeApiKey": REVOKE_KEY_TYPE}
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}],
            primary: types[primary],
        },
        "primaryType": primary,
        "domain": {"name": API_EIP712_NAME, "version": API_EIP712_VERSION, "chainId": chain_id},
        "message": message,
    }


def recover_typed_signer(typed: dict[str, Any], signature: object) -> str:
    """Lower-case address that signed ``typed``; -32602 if the signature is malformed,
    13009 if it does not recover."""
    sig = parse_signature(signature)
    try:
        return Account.recover_message(encode_typed_data(full_message=typed), signature=sig).lower()
    except Exception:
        raise unauthorized("signature does not recover") from None


def parse_signature(value: object, param: str = "signature") -> bytes:
    """A 65-byte ``r ‖ s ‖ v`` signature from 0x-hex; -32602 otherwise."""
    if not isinstance(value, str) or len(value) != 132 or not value.startswith("0x"):
        raise invalid_params(param, "expected 0x-prefixed 65-byte hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise invalid_params(param, "expected 0x-prefixed 65-byte hex") from None


def sign_api_key_message(private_key: bytes | str, typed: dict[str, Any]) -> str:
    """0x-hex signature of ``typed`` (what a wallet's ``eth_signTypedData_v4`` returns);
    for clients, tests and the dev mode."""
    signed = Account.sign_message(encode_typed_data(full_message=typed), private_key)
    return "0x" + bytes(signed.signature).hex()


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


@dataclass
class ApiKey:
    """One API key of ``owner`` (lower-case address)."""

    client_id: str
    client_secret: str
    owner: str
    name: str = ""
    scope: str = "trade"
    created_ms: int = 0
    revoked: bool = False
    # per-key rate-limit state lives in ratelimit.py; tokens here
    tokens: set[str] = field(default_factory=set)

    def public(self) -> dict[str, Any]:
        """Deribit's api key object (without the secret)."""
        return {"client_id": self.client_id, "name": self.name, "owner": self.owner,
                "max_scope": "trade:read_write" if self.scope == "trade" else "trade:read",
                "enabled": not self.revoked, "timestamp": self.created_ms}


@dataclass
class Token:
    key: ApiKey
    expires_ms: int
    refresh: bool = False


class ReplayGuard:
    """Accepts each (identity, timestamp, nonce, signature) once within ``window_ms`` of
    the clock; older or future timestamps beyond the window are refused."""

    def __init__(self, window_ms: int = 60_000, clock: Callable[[], int] = wall_ms, max_entries: int = 1_000_000):
        self.window_ms = window_ms
        self.clock = clock
        self.max_entries = max_entries
        self._seen: dict[tuple, int] = {}
        self._order: collections.deque[tuple[int, tuple]] = collections.deque()

    def check(self, key: tuple, ts: object) -> None:
        """Raise 13009 on a stale, future or replayed request; else remember it."""
        if isinstance(ts, str) and ts.isdigit() and len(ts) < 20:
            ts = int(ts)
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise invalid_params("timestamp", "must be an integer (ms)")
        now = self.clock()
        if abs(now - ts) > self.window_ms:
            raise unauthorized("timestamp outside the accepted window")
        order = self._order
        while order and (order[0][0] < now - self.window_ms or len(order) > self.max_entries):
            _, old = order.popleft()
            self._seen.pop(old, None)
        if key in self._seen:
            raise unauthorized("replayed request")
        self._seen[key] = ts
        order.append((ts if ts > now - self.window_ms else now, key))


class KeyStore:
    """API keys and access tokens. Keys persist (JSON, mode 0600) in ``path`` if given.

    Thread-safe for the few writers (key creation and revocation, dev mode set-up)."""

    def __init__(self, path: str | Path | None = None, chain_id: int = 1, window_ms: int = 60_000,
                 clock: Callable[[], int] = wall_ms) -> None:
        self.path = Path(path) if path is not None else None
        self.chain_id = chain_id
        self.clock = clock
        self.replay = ReplayGuard(window_ms, clock)
        self.keys: dict[str, ApiKey] = {}
        self.tokens: dict[str, Token] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            for item in json.loads(self.path.read_text()):
                key = ApiKey(item["client_id"], item["client_secret"], item["owner"], item.get("name", ""),
                             item.get("scope", "trade"), item.get("created_ms", 0), item.get("revoked", False))
                self.keys[key.client_id] = key

    # -- keys --------------------------------------------------------------------------
    def create(self, owner: str, name: str = "", scope: str = "trade") -> ApiKey:
        """A new key for ``owner`` (no signature check: callers check first)."""
        if scope not in SCOPES:
            raise invalid_params("scope", f"one of {', '.join(SCOPES)}")
        with self._lock:
            live = sum(1 for k in self.keys.values() if k.owner == owner and not k.revoked)
            if live >= MAX_KEYS_PER_OWNER:
                raise ApiError(11029, "invalid_arguments", {"reason": "too many api keys"})
            key = ApiKey(secrets.token_hex(8), secrets.token_urlsafe(32), owner, name[:64], scope, self.clock())
            self.keys[key.client_id] = key
            self._save()
        return key

    def create_signed(self, params: dict[str, Any]) -> ApiKey:
        """``public/create_api_key``: verify the owner's EIP-712 CreateApiKey signature."""
        owner = normalise_address(params.get("owner"))
        name = params.get("name", "")
        scope = params.get("scope", "trade")
        if not isinstance(name, str) or len(name) > 64:
            raise invalid_params("name", "string of at most 64 characters")
        if not isinstance(scope, str):
            raise invalid_params("scope", "string")
        ts, nonce = _uint(params, "timestamp"), _uint(params, "nonce")
        typed = api_key_typed_data(self.chain_id, "CreateApiKey",
                                   {"owner": owner, "name": name, "scope": scope, "timestamp": ts, "nonce": nonce})
        if recover_typed_signer(typed, params.get("signature")) != owner:
            raise unauthorized("signature is not the owner's")
        self.replay.check(("key", owner, nonce), ts)
        return self.create(owner, name, scope)

    def revoke_signed(self, params: dict[str, Any]) -> ApiKey:
        """``public/revoke_api_key``: verify the owner's EIP-712 RevokeApiKey signature."""
        owner = normalise_address(params.get("owner"))
        client_id = params.get("client_id")
        if not isinstance(client_id, str) or len(client_id) > 64:
            raise invalid_params("client_id", "string")
        ts, nonce = _uint(params, "timestamp"), _uint(params, "nonce")
        typed = api_key_typed_data(self.chain_id, "RevokeApiKey",
                                   {"owner": owner, "clientId": client_id, "timestamp": ts, "nonce": nonce})
        if recover_typed_signer(typed, params.get("signature")) != owner:
            raise unauthorized("signature is not the owner's")
        self.replay.check(("key", owner, nonce), ts)
        return self.revoke(owner, client_id)

    def revoke(self, owner: str, client_id: str) -> ApiKey:
        with self._lock:
            key = self.keys.get(client_id)
            if key is None or key.owner != owner:
                raise ApiError(11029, "invalid_arguments", {"reason": "no such api key", "param": "client_id"})
            key.revoked = True
            for token in key.tokens:
                self.tokens.pop(token, None)
            key.tokens.clear()
            self._save()
        return key

    def owned(self, owner: str) -> list[ApiKey]:
        return [k for k in self.keys.values() if k.owner == owner]

    def _save(self) -> None:
        if self.path is None:
            return
        data = [{"client_id": k.client_id, "client_secret": k.client_secret, "owner": k.owner, "name": k.name,
                 "scope": k.scope, "created_ms": k.created_ms, "revoked": k.revoked} for k in self.keys.values()]
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)

    # -- using keys --------------------------------------------------------------------
    def _key(self, client_id: object) -> ApiKey:
        key = self.keys.get(client_id) if isinstance(client_id, str) else None
        if key is None or key.revoked:
            raise ApiError(INVALID_CREDENTIALS, "invalid_credentials", {"reason": "unknown or revoked client_id"})
        return key

    def verify_rest(self, header: str, method: str, uri: str, body: str) -> ApiKey:
        """Check a ``deri-hmac-sha256`` Authorization header (module docstring)."""
        fields = {}
        for part in header[len("deri-hmac-sha256"):].strip().split(","):
            name, _, value = part.strip().partition("=")
            fields[name] = value
        client_id, ts, sig, nonce = fields.get("id"), fields.get("ts"), fields.get("sig"), fields.get("nonce", "")
        if not client_id or not ts or not sig or len(nonce) > 64:
            raise unauthorized("malformed deri-hmac-sha256 header")
        key = self._key(client_id)
        expected = hmac_hex(key.client_secret, f"{ts}\n{nonce}\n{method.upper()}\n{uri}\n{body}\n")
        if not hmac.compare_digest(expected, sig):
            raise unauthorized("bad signature")
        self.replay.check((client_id, ts, nonce, sig), ts)
        return key

    def authenticate(self, params: dict[str, Any]) -> dict[str, Any]:
        """``public/auth``: returns Deribit's answer (access_token, refresh_token, …)."""
        grant = params.get("grant_type")
        if grant == "client_credentials":
            key = self._key(params.get("client_id"))
            secret = params.get("client_secret")
            if not isinstance(secret, str) or not hmac.compare_digest(secret, key.client_secret):
                raise ApiError(INVALID_CREDENTIALS, "invalid_credentials", {"reason": "bad client_secret"})
        elif grant == "client_signature":
            key = self._key(params.get("client_id"))
            ts, nonce, data, sig = (params.get("timestamp"), params.get("nonce", ""), params.get("data", ""),
                                    params.get("signature"))
            if not isinstance(nonce, str) or not isinstance(data, str) or not isinstance(sig, str) \
                    or len(nonce) > 64 or len(data) > 1024:
                raise invalid_params("signature", "nonce, data and signature must be strings")
            expected = hmac_hex(key.client_secret, f"{ts}\n{nonce}\n{data}")
            if not hmac.compare_digest(expected, sig):
                raise unauthorized("bad signature")
            self.replay.check((key.client_id, ts, nonce, sig), ts)
        elif grant == "refresh_token":
            refresh = params.get("refresh_token")
            token = self.tokens.get(refresh) if isinstance(refresh, str) else None
            if token is None or not token.refresh or token.expires_ms < self.clock() or token.key.revoked:
                raise unauthorized("invalid refresh_token")
            self.tokens.pop(refresh, None)
            token.key.tokens.discard(refresh)
            key = token.key
        else:
            raise invalid_params("grant_type", "client_credentials, client_signature or refresh_token")
        return self.issue(key)

    def issue(self, key: ApiKey) -> dict[str, Any]:
        now = self.clock()
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        with self._lock:
            self._prune(now)
            self.tokens[access] = Token(key, now + TOKEN_LIFETIME_S * 1000)
            self.tokens[refresh] = Token(key, now + 10 * TOKEN_LIFETIME_S * 1000, refresh=True)
            key.tokens.update((access, refresh))
        return {"access_token": access, "refresh_token": refresh, "expires_in": TOKEN_LIFETIME_S,
                "token_type": "bearer", "scope": "connection session:api trade:read_write"
                if key.scope == "trade" else "connection trade:read", "client_id": key.client_id,
                "owner": key.owner}

    def bearer(self, access_token: object) -> ApiKey:
        """The key of a live access token; 13009 otherwise."""
        token = self.tokens.get(access_token) if isinstance(access_token, str) else None
        if token is None or token.refresh or token.key.revoked:
            raise unauthorized("invalid or expired access_token")
        if token.expires_ms < self.clock():
            self.tokens.pop(access_token, None)
            raise unauthorized("access_token expired")
        return token.key

    def _prune(self, now: int) -> None:
        if len(self.tokens) < 10_000:
            return
        for name in [n for n, t in self.tokens.items() if t.expires_ms < now]:
            token = self.tokens.pop(name)
            token.key.tokens.discard(name)


def _uint(params: dict[str, Any], name: str) -> int:
    value = params.get(name)
    if isinstance(value, str) and value.isdigit() and len(value) < 20:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
        raise invalid_params(name, "unsigned 64-bit integer")
    return value


__all__ = ["ApiKey", "KeyStore", "ReplayGuard", "api_key_typed_data", "hmac_hex", "normalise_address",
           "recover_typed_signer", "sign_api_key_message", "UNAUTHORIZED"]
