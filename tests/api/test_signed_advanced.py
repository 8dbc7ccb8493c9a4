"""EIP-712 signed advanced orders (issue 9) through the API: the typed data a wallet signs
(public/get_order_typed_data, get_twap_typed_data, get_cancel_orders_typed_data,
get_cancel_typed_data), signed stop / TWAP / batch cancel accepted and handed to
``ApiConfig.on_authorised`` (→ batch data as signed), a signature over other values
refused with nothing submitted; and ``clearway node --dev`` wiring that hook."""

from __future__ import annotations

import itertools

import httpx
import pytest
from eth_account import Account

from api_support import MID, PERP, USDC, CommitmentSigning, Harness
from clearway.api import cli
from clearway.api.service import ApiConfig
from clearway.domain.commands import CancelOrder, CancelOrders, Deposit, PlaceOrder, PlaceTwap

SIGNING = CommitmentSigning()
AUTHORISED: list[tuple] = []
_deposits = itertools.count(10_000)


@pytest.fixture(scope="module")
def harness():
    h = Harness(ApiConfig(signing=SIGNING, on_authorised=lambda *a: AUTHORISED.append(a)))
    yield h
    h.close()


def rpc(harness, method: str, key=None, **params) -> dict:
    headers = {}
    if key is not None:
        token = httpx.post(harness.server.url + "/api/v2", json={
            "jsonrpc": "2.0", "id": 1, "method": "public/auth",
            "params": {"grant_type": "client_credentials", "client_id": key.client_id,
                       "client_secret": key.client_secret}}).json()["result"]["access_token"]
        headers["Authorization"] = f"bearer {token}"
    return httpx.post(harness.server.url + "/api/v2", json={"jsonrpc": "2.0", "id": 2, "method": method,
                                                             "params": params}, headers=headers, timeout=30).json()


def wallet(harness):
    """(eth account, owner, API key) of a new wallet with 100,000 USDC deposited."""
    acct = Account.create()
    owner = acct.address.lower()
    with harness._lock:
        harness.node.submit(Deposit(0, 0, owner, 100_000 * USDC, next(harness._deposits))).result()
    harness.sync()
    return acct, owner, harness.api.keys.create(owner)


def wallet_signature(acct, typed: dict) -> str:
    """What a wallet's eth_signTypedData_v4 returns for ``typed`` (the API's JSON)."""
    return "0x" + bytes(acct.sign_typed_data(full_message=typed).signature).hex()


STOP = {"instrument_name": PERP, "amount": "0.01", "type": "stop_limit", "price": "59000", "trigger_price": "59500",
        "trigger": "index_price"}


def test_a_wallet_signed_stop_limit_is_accepted_and_reaches_the_batch_hook(harness):
    acct, owner, key = wallet(harness)
    typed = rpc(harness, "public/get_order_typed_data", owner=owner, nonce=5, direction="sell", **STOP)["result"]
    assert typed["primaryType"] == "AdvancedOrder"
    assert typed["message"]["triggerPrice"] == 59_500 * USDC and typed["message"]["trigger"] == 2
    signature = wallet_signature(acct, typed)
    order = rpc(harness, "private/sell", key, signature=signature, nonce=5, **STOP)["result"]["order"]
    assert order["order_state"] == "untriggered"
    seq, command, signer, nonce, raw = AUTHORISED[-1]
    assert type(command) is PlaceOrder and command.trigger_price == 59_500 * USDC and command.seq == seq
    assert (signer, nonce, raw) == (owner, 5, bytes.fromhex(signature[2:]))
    rpc(harness, "private/cancel_all", key)


@pytest.mark.parametrize("change", [{"trigger_price": "59400"}, {"trigger": "mark_price"}, {"max_show": "0.001"},
                                   {"type": "limit", "trigger_price": None, "trigger": None}])
def test_a_signature_over_other_advanced_values_is_refused_and_nothing_is_placed(harness, change):
    acct, owner, key = wallet(harness)
    typed = rpc(harness, "public/get_order_typed_data", owner=owner, nonce=6, direction="sell", **STOP)["result"]
    signature = wallet_signature(acct, typed)
    sent = {k: v for k, v in {**STOP, **change}.items() if v is not None}
    before = len(AUTHORISED)
    answer = rpc(harness, "private/sell", key, signature=signature, nonce=6, **sent)
    assert answer["error"]["code"] == 13009, answer
    assert len(AUTHORISED) == before
    assert rpc(harness, "private/get_open_orders_by_instrument", key, instrument_name=PERP)["result"] == []


def test_a_wallet_signed_twap_and_batch_cancel_are_accepted(harness):
    acct, owner, key = wallet(harness)
    params = {"instrument_name": PERP, "direction": "buy", "amount": "1", "duration": 300, "interval": 30,
              "price": str((MID - 1_000 * USDC) // USDC)}
    typed = rpc(harness, "public/get_twap_typed_data", owner=owner, nonce=7, **params)["result"]
    assert typed["primaryType"] == "Twap" and typed["message"]["durationMs"] == 300_000
    bad = rpc(harness, "private/place_twap", key, signature=wallet_signature(acct, typed), nonce=7,
              **{**params, "interval": 60})
    assert bad["error"]["code"] == 13009
    twap = rpc(harness, "private/place_twap", key, signature=wallet_signature(acct, typed), nonce=7,
               **params)["result"]
    assert twap["order_state"] == "open"
    assert type(AUTHORISED[-1][1]) is PlaceTwap and AUTHORISED[-1][2:4] == (owner, 7)
    resting = rpc(harness, "private/buy", key, instrument_name=PERP, amount="0.1", price="50000")["result"]["order"]
    ids = [resting["order_id"], twap["order_id"]]
    typed = rpc(harness, "public/get_cancel_orders_typed_data", owner=owner, nonce=8, order_ids=ids)["result"]
    assert typed["primaryType"] == "CancelOrders" and typed["message"]["orderIds"] == [int(i) for i in ids]
    signature = wallet_signature(acct, typed)
    bad = rpc(harness, "private/cancel_orders", key, signature=signature, nonce=8, order_ids=ids[::-1])
    assert bad["error"]["code"] == 13009
    answer = rpc(harness, "private/cancel_orders", key, signature=signature, nonce=8, order_ids=ids)["result"]
    assert sorted(o["order_id"] for o in answer["cancelled"]) == sorted(ids)
    seq, command, *_ = AUTHORISED[-1]
    assert type(command) is CancelOrders and command.order_ids == tuple(int(i) for i in ids)


def test_a_signed_cancel_twap(harness):
    acct, owner, key = wallet(harness)
    twap = rpc(harness, "private/place_twap", key, instrument_name=PERP, direction="buy", amount="1", duration=300,
               interval=30, price=str((MID - 1_000 * USDC) // USDC))["result"]
    typed = rpc(harness, "public/get_cancel_typed_data", owner=owner, nonce=9, order_id=twap["order_id"])["result"]
    assert typed["primaryType"] == "Cancel"
    done = rpc(harness, "private/cancel_twap", key, signature=wallet_signature(acct, typed), nonce=9,
               order_id=twap["order_id"])["result"]
    assert done["order_state"] == "cancelled"
    assert type(AUTHORISED[-1][1]) is CancelOrder and AUTHORISED[-1][2:4] == (owner, 9)


class _FakeChain:
    """What ``clearway node --dev`` needs of a dev chain: settlement, fund, close, and the
    ``on_authorised`` hook the API must be given."""

    def __init__(self, node) -> None:
        self.node, self.settlement, self.authorised = node, None, []
        self._deposit = node.state.last_deposit_id

    def fund(self, private_key: bytes, amount: int) -> None:
        self._deposit += 1
        self.node.submit(Deposit(0, 0, Account.from_key(private_key).address.lower(), amount, self._deposit)).result()

    def on_authorised(self, *args) -> None:
        self.authorised.append(args)

    def close(self) -> None:
        pass


def test_dev_mode_hands_api_signed_orders_to_the_chains_hook(tmp_path):
    made = []

    def dev_chain(genesis, node):
        made.append(_FakeChain(node))
        return made[-1]

    args = cli.build_parser().parse_args(["node", "--dev", "--api-port", "0", "--dev-accounts", "1",
                                          "--dev-deposit", "50000"])
    seen = {}

    def use(document):
        account = document["accounts"][0]
        acct = Account.from_key(bytes.fromhex(account["private_key"][2:]))
        url = document["api"]["http"] + "/api/v2"
        typed = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "public/get_order_typed_data", "params": {
            "owner": account["address"], "nonce": 3, "instrument_name": "BTC_USDC-PERPETUAL", "amount": "0.01",
            "price": "59000", "max_show": "0.001"}}).json()["result"]
        token = httpx.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "public/auth", "params": {
            "grant_type": "client_credentials", "client_id": account["client_id"],
            "client_secret": account["client_secret"]}}).json()["result"]["access_token"]
        seen["order"] = httpx.post(url, headers={"Authorization": f"bearer {token}"}, json={
            "jsonrpc": "2.0", "id": 3, "method": "private/buy", "params": {
                "instrument_name": "BTC_USDC-PERPETUAL", "amount": "0.01", "price": "59000", "max_show": "0.001",
                "nonce": 3, "signature": wallet_signature(acct, typed)}}).json()

    assert cli.run_dev(args, dev_chain, lambda settlement: SIGNING, ready=use) == 0
    assert seen["order"]["result"]["order"]["order_state"] == "open", seen["order"]
    (seq, command, owner, nonce, _), = made[0].authorised
    assert type(command) is PlaceOrder and command.display_size == 10 and (owner, nonce) == (
        Account.from_key(cli.dev_private_key(0)).address.lower(), 3)
