"""Hostile input (Hypothesis) over HTTP and WebSocket: every malformed request is answered
with a JSON-RPC error, every answer is a well-formed JSON-RPC response, the server keeps
serving, and the exchange state hash does not change."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.sync.client import connect

from clearway.api.rpc import METHODS

KNOWN = sorted(METHODS)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                database=None)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["BTC_USDC-PERPETUAL", "BTC_USDC-31MAR23-65000-C", "0", "-1", "1e400", "NaN", "true",
                     "0x" + "11" * 20, "0x" + "zz" * 65, "market", "limit", "fill_or_kill", "USDC", "any"]),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
param_names = st.sampled_from(["instrument_name", "amount", "price", "type", "order_id", "label", "currency",
                               "kind", "depth", "count", "channels", "grant_type", "client_id", "timestamp",
                               "signature", "nonce", "owner", "time_in_force", "post_only", "reduce_only",
                               "start_timestamp", "sorting", "index_name", "access_token"])
params = st.dictionaries(param_names | st.text(max_size=10), json_values, max_size=6)
requests = st.fixed_dictionaries({"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2]),
                                  "id": json_scalars, "method": st.sampled_from(KNOWN) | st.text(max_size=30),
                                  "params": params | json_values})
malformed = st.one_of(
    st.binary(max_size=200).filter(lambda b: not _is_json(b)),
    json_values.filter(lambda v: not isinstance(v, (dict, list))).map(json.dumps),
    st.dictionaries(st.sampled_from(["jsonrpc", "id", "params"]), json_values, max_size=3).map(json.dumps),
    st.builds(lambda m: json.dumps({"jsonrpc": "2.0", "id": 1, "method": m}),
              st.text(max_size=20).filter(lambda m: m not in METHODS)),
    st.builds(lambda m, p: json.dumps({"jsonrpc": "2.0", "id": 1, "method": m, "params": p}),
              st.sampled_from(KNOWN), st.lists(json_scalars, max_size=3)),
)


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
        return True
    except ValueError:
        return False


def _check(answer: dict) -> None:
    assert answer["jsonrpc"] == "2.0" and ("result" in answer) != ("error" in answer)
    if "error" in answer:
        assert isinstance(answer["error"]["code"], int) and isinstance(answer["error"]["message"], str)


@pytest.fixture(scope="module")
def trader(harness):
    """An authenticated key whose owner never deposited: private methods run, but no
    command can reach the sequencer."""
    _, key = harness.account(usdc=0)
    return key


@pytest.fixture(scope="module")
def before(harness):
    return harness.state_hash()


def test_malformed_http_posts_are_answered_with_errors(harness, before):
    with httpx.Client(base_url=harness.server.url) as client:
        @FUZZ
        @given(malformed)
        def run(body):
            answer = client.post("/api/v2", content=body if isinstance(body, bytes) else body.encode()).json()
            _check(answer)
            assert "error" in answer
        run()
        assert client.get("/api/v2/public/test").json()["result"]["version"]
    assert harness.state_hash() == before


def test_random_http_requests_get_well_formed_answers_and_change_nothing(harness, before):
    with httpx.Client(base_url=harness.server.url) as client:
        @FUZZ
        @given(requests, st.sampled_from(["post", "get"]))
        def run(request, verb):
            if verb == "post":
                answer = client.post("/api/v2", json=request).json()
            else:
                method = request["method"] if isinstance(request["method"], str) else "x"
                query = request["params"] if isinstance(request["params"], dict) else {}
                flat = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
                answer = client.get("/api/v2/" + quote(method, safe="/"), params=flat).json()
            if isinstance(answer, dict):
                _check(answer)
            if isinstance(request["method"], str) and request["method"].startswith("private/") and verb == "post":
                assert "error" in answer  # unauthenticated
        run()
    assert harness.state_hash() == before


def test_websocket_garbage_and_random_requests_on_an_authenticated_connection(harness, trader, before):
    with connect(harness.server.ws_url, max_size=2**22) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "public/auth", "params": {
            "grant_type": "client_credentials", "client_id": trader.client_id,
            "client_secret": trader.client_secret}}))
        assert "result" in json.loads(ws.recv(timeout=20))

        def answer_to(payload) -> dict:
            ws.send(payload)
            while True:  # skip subscription notifications a random subscribe may cause
                message = json.loads(ws.recv(timeout=20))
                if message.get("method") != "subscription":
                    return message

        @FUZZ
        @given(malformed | requests.map(json.dumps))
        def run(payload):
            answer = answer_to(payload)
            if isinstance(answer, list):
                for item in answer:
                    _check(item)
            else:
                _check(answer)
        run()
        big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/test", "params": {"x": "y" * 40_000}})
        assert answer_to(big)["error"]["code"] == -32600
        assert answer_to(json.dumps({"jsonrpc": "2.0", "id": 5, "method": "public/test"}))["result"]
    assert harness.state_hash() == before


def test_unknown_routes_and_verbs_get_json_rpc_errors(harness):
    with httpx.Client(base_url=harness.server.url) as client:
        for response in (client.get("/api/v2/"), client.get("/nowhere"), client.put("/api/v2"),
                         client.delete("/api/v2/public/test")):
            _check(response.json())
            assert response.json()["error"]["code"] in (-32600, -32601)
        too_big = client.post("/api/v2", content=b"[" + b"1," * 40_000 + b"1]")
        assert too_big.json()["error"]["code"] == -32600
