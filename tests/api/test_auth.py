"""Wallet-bound API keys (EIP-712), HMAC request signatures with replay protection,
revocation, WebSocket client_signature, EIP-712 signed orders and withdrawals."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import ccxt
import httpx
import pytest
import websockets
from eth_account import Account

from api_support import PERP, PERP_SYMBOL, USDC, CommitmentSigning, Harness
from clearway.api.auth import api_key_typed_data, sign_api_key_message
from clearway.api.service import ApiConfig
from clearway.domain.commands import Deposit, PlaceOrder, Withdraw

SIGNING = CommitmentSigning()


@pytest.fixture(scope="module")
def harness():
    h = Harness(ApiConfig(signing=SIGNING))
    yield h
    h.close()


def rpc(harness, method: str, **params) -> dict:
    return httpx.post(harness.server.url + "/api/v2",
                      json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).json()


def wallet(harness, usdc: int = 100_000):
    acct = Account.create()
    owner = acct.address.lower()
    if usdc:
        with harness._lock:
            harness.node.submit(Deposit(0, 0, owner, usdc * USDC, next(harness._deposits))).result()
        harness.sync()
    return acct, owner


def create_key(harness, acct, owner, nonce=1, signer=None, name="bot"):
    ts = int(time.time() * 1000)
    typed = api_key_typed_data(harness.api.keys.chain_id, "CreateApiKey",
                               {"owner": owner, "name": name, "scope": "trade", "timestamp": ts, "nonce": nonce})
    params = {"owner": owner, "name": name, "scope": "trade", "timestamp": ts, "nonce": nonce,
              "signature": sign_api_key_message((signer or acct).key, typed)}
    return params, rpc(harness, "public/create_api_key", **params)


def test_owner_signature_creates_a_key_that_trades_and_a_replay_is_refused(harness):
    acct, owner = wallet(harness)
    params, answer = create_key(harness, acct, owner)
    key = answer["result"]
    assert key["owner"] == owner and key["client_secret"]
    ex = harness.ccxt()
    ex.apiKey, ex.secret = key["client_id"], key["client_secret"]
    order = ex.create_order(PERP_SYMBOL, "limit", "buy", 0.01, 50_000)
    assert order["status"] == "open"
    ex.cancel_order(order["id"])
    replay = rpc(harness, "public/create_api_key", **params)
    assert replay["error"]["code"] == 13009


def test_a_key_request_signed_by_someone_else_is_refused(harness):
    acct, owner = wallet(harness)
    _, answer = create_key(harness, acct, owner, signer=Account.create())
    assert answer["error"]["code"] == 13009


def _signed_get(harness, key, path: str, ts: int | None = None, nonce: str = "n1", sent: str | None = None):
    ts = ts if ts is not None else int(time.time() * 1000)
    sig = hmac.new(key.client_secret.encode(), f"{ts}\n{nonce}\nGET\n{path}\n\n".encode(), hashlib.sha256).hexdigest()
    header = f"deri-hmac-sha256 id={key.client_id},ts={ts},sig={sig},nonce={nonce}"
    return httpx.get(harness.server.url + (sent or path), headers={"Authorization": header}).json()


def test_hmac_request_replayed_or_stale_is_refused(harness):
    _, key = harness.account()
    path = "/api/v2/private/get_account_summary?currency=USDC"
    ts = int(time.time() * 1000)
    assert "result" in _signed_get(harness, key, path, ts)
    assert _signed_get(harness, key, path, ts)["error"]["code"] == 13009  # the same request again
    stale = int(time.time() * 1000) - 10 * 60_000
    assert _signed_get(harness, key, path, stale, "n2")["error"]["code"] == 13009
    tampered = _signed_get(harness, key, path, ts, "n3", sent=path.replace("USDC", "usdc"))
    assert tampered["error"]["code"] == 13009


def test_revoked_key_stops_working_over_rest_and_on_an_open_websocket(harness):
    acct, owner = wallet(harness)
    key = create_key(harness, acct, owner, nonce=5)[1]["result"]
    ex = harness.ccxt()
    ex.apiKey, ex.secret = key["client_id"], key["client_secret"]
    ex.fetch_balance()

    async def scenario():
        async with websockets.connect(harness.server.ws_url) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/auth", "params": {
                "grant_type": "client_credentials", "client_id": key["client_id"],
                "client_secret": key["client_secret"]}}))
            assert "access_token" in json.loads(await ws.recv())["result"]
            ts = int(time.time() * 1000)
            typed = api_key_typed_data(harness.api.keys.chain_id, "RevokeApiKey",
                                       {"owner": owner, "clientId": key["client_id"], "timestamp": ts, "nonce": 6})
            revoked = rpc(harness, "public/revoke_api_key", owner=owner, client_id=key["client_id"], timestamp=ts,
                          nonce=6, signature=sign_api_key_message(acct.key, typed))
            assert revoked["result"]["enabled"] is False
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "private/get_positions", "params": {}}))
            return json.loads(await ws.recv())
    assert asyncio.run(scenario())["error"]["code"] == 13009
    with pytest.raises(ccxt.AuthenticationError):
        ex.fetch_balance()


def test_websocket_client_signature_authenticates_once(harness):
    _, key = harness.account()
    ts = int(time.time() * 1000)
    sig = hmac.new(key.client_secret.encode(), f"{ts}\nabc\n".encode(), hashlib.sha256).hexdigest()
    auth = {"jsonrpc": "2.0", "id": 1, "method": "public/auth", "params": {
        "grant_type": "client_signature", "client_id": key.client_id, "timestamp": ts, "signature": sig,
        "nonce": "abc", "data": ""}}

    async def scenario():
        async with websockets.connect(harness.server.ws_url) as ws:
            await ws.send(json.dumps(auth))
            first = json.loads(await ws.recv())
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "private/get_open_orders",
                                      "params": {}}))
            orders = json.loads(await ws.recv())
            await ws.send(json.dumps(auth))
            replay = json.loads(await ws.recv())
            return first, orders, replay
    first, orders, replay = asyncio.run(scenario())
    assert first["result"]["token_type"] == "bearer" and orders["result"] == []
    assert replay["error"]["code"] == 13009


def test_owner_signed_order_is_accepted_recorded_and_its_nonce_cannot_be_reused(harness):
    acct, owner = wallet(harness)
    key = harness.api.keys.create(owner)
    account = harness.api.account_id(owner)
    ex = harness.ccxt(key)
    command = PlaceOrder(0, 0, account, 0, 1, 100, 50_000 * USDC, 1, 1, False, False, "")
    signature = SIGNING.sign(acct.key, command, owner, 42)
    params = {"instrument_name": PERP, "amount": "0.01", "price": "50000", "signature": signature, "nonce": 42}
    order = ex.privateGetBuy(params)["result"]["order"]
    seq = max(harness.api.signed)
    assert harness.api.signed[seq] == (owner, 42, bytes.fromhex(signature[2:]))
    with pytest.raises(ccxt.AuthenticationError):  # the same nonce again
        ex.privateGetBuy(params)
    other = SIGNING.sign(Account.create().key, command, owner, 43)
    with pytest.raises(ccxt.AuthenticationError):  # not the owner's signature
        ex.privateGetBuy({**params, "signature": other, "nonce": 43})
    ex.cancel_order(order["order_id"])


def test_withdrawal_needs_the_owners_signature_never_an_api_key(harness):
    acct, owner = wallet(harness, usdc=1_000)
    account = harness.api.account_id(owner)
    unsigned = rpc(harness, "public/request_withdrawal", owner=owner, amount="100", nonce=1)
    assert unsigned["error"]["code"] == 13009
    typed = rpc(harness, "public/get_withdrawal_typed_data", owner=owner, amount="100", nonce=9)["result"]
    assert typed["primaryType"] == "Withdraw" and typed["message"]["amount"] == 100 * USDC
    signature = SIGNING.sign(acct.key, Withdraw(0, 0, account, 100 * USDC), owner, 9)
    done = rpc(harness, "public/request_withdrawal", owner=owner, amount="100", nonce=9, signature=signature)
    assert done["result"]["amount"] == 100.0 and done["result"]["cash"] == 900.0
    again = rpc(harness, "public/request_withdrawal", owner=owner, amount="100", nonce=9, signature=signature)
    assert again["error"]["code"] == 13009
