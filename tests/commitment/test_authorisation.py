"""EIP-712 authorisation of account commands: digests match eth-account's EIP-712
implementation, signatures recover to the signer, malformed or replayed ones do not."""

import msgspec
import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from clearway.commitment.authorisation import (
    OPERATOR, SECP256K1_N, Authorisation, AuthKind, command_digest, exchange_domain_separator,
    primary_type, recover_signer, sign_command, type_string, typed_data,
)
from clearway.commitment.batch import batch_of, decode_batch, encode_batch
from clearway.domain.commands import (
    AmendOrder, CancelAll, CancelOrder, CancelOrders, PlaceOrder, PlaceTwap, Withdraw,
)
from clearway.domain.orders import OrderType, TimeInForce, TriggerSource

KEY = Account.from_key(b"\x11" * 32)
VAULT = "0x" + "5a" * 20
CHAIN_ID = 31337
SEPARATOR = exchange_domain_separator(CHAIN_ID, VAULT)
COMMANDS = [
    PlaceOrder(7, 1_000, 2, 0, -1, 250, 25_000_000_000, 1, 2, True, False, "mine-1"),
    CancelOrder(8, 1_000, 2, 41, ""),
    CancelAll(9, 1_000, 2, -1),
    AmendOrder(10, 1_000, 2, 41, 300, 24_900_000_000),
    Withdraw(11, 1_000, 2, 5_000_000),
    # issue 9: a stop-limit with a trigger, an iceberg with good-til-time, a TWAP, a batch cancel
    PlaceOrder(12, 1_000, 2, 0, -1, 250, 24_000_000_000, OrderType.STOP_LIMIT, TimeInForce.GTC, False, True, "sl",
               trigger_price=24_500_000_000, trigger=TriggerSource.INDEX, expire_at=1_700_000_000_000),
    PlaceOrder(13, 1_000, 2, 0, 1, 1_000, 25_000_000_000, display_size=100, expire_at=1_700_000_060_000),
    PlaceTwap(14, 1_000, 2, 0, 1, 3_000, 600_000, 60_000, 5_000, 0, False, "twap-1"),
    CancelOrders(15, 1_000, 2, (41, 7, 1_000_003)),
]
ADVANCED_FIELDS = {"trigger_price": 24_600_000_000, "trigger": TriggerSource.LAST, "display_size": 50,
                   "expire_at": 1_700_000_000_001}
TWAP_FIELDS = {"instrument": 1, "side": -1, "size": 3_001, "duration_ms": 1_200_000, "interval_ms": 30_000,
               "price_tolerance_ppm": 5_001, "limit_price": 25_000_000_000, "reduce_only": True,
               "client_order_id": "twap-2"}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_digest_equals_eth_accounts_eip712_hash_of_the_typed_data(command):
    full = typed_data(CHAIN_ID, VAULT, command, KEY.address, 1_699)
    assert _hash_eip191_message(encode_typed_data(full_message=full)) == command_digest(
        SEPARATOR, command, KEY.address, 1_699)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_a_signature_recovers_to_its_signer_and_binds_every_field(command):
    auth = sign_command(KEY.key, SEPARATOR, command, KEY.address, 5)
    assert auth.kind == AuthKind.SIGNED and len(auth.signature) == 65
    assert recover_signer(SEPARATOR, command, KEY.address, auth) == KEY.address
    # seq and ts are the sequencer's: not signed
    moved = type(command)(*(99, 99, *[getattr(command, f) for f in command.__struct_fields__[2:]]))
    assert recover_signer(SEPARATOR, moved, KEY.address, auth) == KEY.address
    other_nonce = Authorisation(AuthKind.SIGNED, 6, auth.signature)
    assert recover_signer(SEPARATOR, command, KEY.address, other_nonce) != KEY.address
    other_vault = exchange_domain_separator(CHAIN_ID, "0x" + "5b" * 20)
    assert recover_signer(other_vault, command, KEY.address, auth) != KEY.address


def test_type_strings_are_the_documented_ones():
    assert type_string(PlaceOrder) == (
        "Order(address owner,uint32 instrument,int8 side,uint64 size,uint64 price,uint8 orderType,"
        "uint8 timeInForce,bool postOnly,bool reduceOnly,string clientOrderId,uint64 nonce)")
    assert type_string(Withdraw) == "Withdraw(address owner,uint64 amount,uint64 nonce)"


def test_high_s_bad_v_and_operator_envelopes_recover_nothing():
    command = COMMANDS[0]
    auth = sign_command(KEY.key, SEPARATOR, command, KEY.address, 5)
    r, s, v = auth.signature[:32], int.from_bytes(auth.signature[32:64], "big"), auth.signature[64]
    high_s = Authorisation(AuthKind.SIGNED, 5, r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v]))
    assert recover_signer(SEPARATOR, command, KEY.address, high_s) is None
    bad_v = Authorisation(AuthKind.SIGNED, 5, auth.signature[:64] + b"\x01")
    assert recover_signer(SEPARATOR, command, KEY.address, bad_v) is None
    assert recover_signer(SEPARATOR, command, KEY.address, OPERATOR) is None


def test_a_command_outside_its_eip712_types_cannot_be_signed_or_recovered():
    negative = PlaceOrder(1, 1, 2, 0, 1, -5, 1)
    with pytest.raises(ValueError):
        sign_command(KEY.key, SEPARATOR, negative, KEY.address, 1)
    forged = Authorisation(AuthKind.SIGNED, 1, b"\x01" * 64 + b"\x1b")
    assert recover_signer(SEPARATOR, negative, KEY.address, forged) is None


def test_envelopes_are_checked_on_construction():
    with pytest.raises(ValueError):
        Authorisation(AuthKind.SIGNED, 1, b"short")
    with pytest.raises(ValueError):
        Authorisation(AuthKind.OPERATOR, 1)
    with pytest.raises(ValueError):
        Authorisation(AuthKind.SIGNED, 2**64, bytes(65))


def test_the_new_messages_have_the_documented_type_strings():
    assert type_string("AdvancedOrder") == (
        "AdvancedOrder(address owner,uint32 instrument,int8 side,uint64 size,uint64 price,uint8 orderType,"
        "uint8 timeInForce,bool postOnly,bool reduceOnly,string clientOrderId,uint64 triggerPrice,uint8 trigger,"
        "uint64 displaySize,uint64 expireAt,uint64 nonce)")
    assert type_string(PlaceTwap) == (
        "Twap(address owner,uint32 instrument,int8 side,uint64 size,uint64 durationMs,uint64 intervalMs,"
        "uint32 priceTolerancePpm,uint64 limitPrice,bool reduceOnly,string clientOrderId,uint64 nonce)")
    assert type_string(CancelOrders) == "CancelOrders(address owner,uint64[] orderIds,uint64 nonce)"


def test_a_place_order_is_an_advanced_order_exactly_when_it_uses_an_issue_9_field():
    plain = COMMANDS[0]
    assert primary_type(plain) == "Order"
    for name, value in ADVANCED_FIELDS.items():
        assert primary_type(msgspec.structs.replace(plain, **{name: value})) == "AdvancedOrder", name
    assert [primary_type(c) for c in COMMANDS[5:]] == ["AdvancedOrder", "AdvancedOrder", "Twap", "CancelOrders"]


def test_a_plain_order_signed_before_issue_9_keeps_its_digest():
    # the Order type hash and struct of the pre-issue-9 code, written out by hand
    from eth_abi import encode
    from eth_hash.auto import keccak

    command = COMMANDS[0]
    typehash = keccak(b"Order(address owner,uint32 instrument,int8 side,uint64 size,uint64 price,uint8 orderType,"
                      b"uint8 timeInForce,bool postOnly,bool reduceOnly,string clientOrderId,uint64 nonce)")
    struct = keccak(encode(
        ["bytes32", "address", "uint32", "int8", "uint64", "uint64", "uint8", "uint8", "bool", "bool", "bytes32",
         "uint64"],
        [typehash, KEY.address, 0, -1, 250, 25_000_000_000, 1, 2, True, False, keccak(b"mine-1"), 9]))
    assert command_digest(SEPARATOR, command, KEY.address, 9) == keccak(b"\x19\x01" + SEPARATOR + struct)


@pytest.mark.parametrize("field", sorted(ADVANCED_FIELDS))
@pytest.mark.parametrize("signed", [0, 5, 6], ids=["plain", "stop-limit", "iceberg"])
def test_changing_any_advanced_field_of_a_signed_order_breaks_its_signature(field, signed):
    command = COMMANDS[signed]
    auth = sign_command(KEY.key, SEPARATOR, command, KEY.address, 3)
    assert recover_signer(SEPARATOR, command, KEY.address, auth) == KEY.address
    for value in (ADVANCED_FIELDS[field], 0):
        changed = msgspec.structs.replace(command, **{field: value})
        if changed != command:
            assert recover_signer(SEPARATOR, changed, KEY.address, auth) != KEY.address, (field, value)


@pytest.mark.parametrize("field", sorted(TWAP_FIELDS))
def test_changing_any_field_of_a_signed_twap_breaks_its_signature(field):
    command = COMMANDS[7]
    auth = sign_command(KEY.key, SEPARATOR, command, KEY.address, 3)
    changed = msgspec.structs.replace(command, **{field: TWAP_FIELDS[field]})
    assert changed != command
    assert recover_signer(SEPARATOR, changed, KEY.address, auth) != KEY.address


@pytest.mark.parametrize("ids", [(41, 7), (41, 7, 1_000_003, 9), (7, 41, 1_000_003), (41, 7, 1_000_004), ()])
def test_adding_dropping_reordering_or_changing_a_cancelled_id_breaks_the_signature(ids):
    command = COMMANDS[8]
    auth = sign_command(KEY.key, SEPARATOR, command, KEY.address, 3)
    changed = msgspec.structs.replace(command, order_ids=ids)
    assert recover_signer(SEPARATOR, changed, KEY.address, auth) != KEY.address


def test_signed_twap_and_batch_cancel_survive_the_batch_data_and_verify_from_it():
    commands = [msgspec.structs.replace(c, seq=20 + i) for i, c in enumerate(COMMANDS)]
    auths = [sign_command(KEY.key, SEPARATOR, c, KEY.address, 1_000 + i) for i, c in enumerate(commands)]
    decoded = decode_batch(encode_batch(batch_of(3, commands, auths)))
    assert decoded.commands == tuple(commands) and decoded.authorisations == tuple(auths)
    for command, auth in zip(decoded.commands, decoded.authorisations):
        assert recover_signer(SEPARATOR, command, KEY.address, auth) == KEY.address


# Batch data version 1, written by the encoder before TWAP and batch cancel were signable
# (commit 55d7ff6, clearway/commitment/batch.py): PlaceOrder, PlaceTwap, CancelOrders,
# CancelOrder, all operator-attested; the TWAP and the batch cancel carry no AUTH byte.
V1_BATCH = bytes.fromhex(
    "4357420101b9f2585763616579c1def0e5db84d814164606062616200642206064626460d4646404d28c8c8940928d91011930c988"
    "1ace5d52529e5800d2f2ff2ca3ce39064ef503675f259c15ee6038b460eadae4c4bce4d49cf8fca294d4a262a0a249cc2c0c00")


def test_version_1_batch_data_still_decodes():
    batch = decode_batch(V1_BATCH)
    assert batch.commands == (
        PlaceOrder(5, 1_000, 2, 0, 1, 100, 25_000_000_000, client_order_id="a"),
        PlaceTwap(6, 1_000, 2, 0, -1, 300, 600_000, 60_000, 5_000),
        CancelOrders(7, 1_001, 2, (3, 4)),
        CancelOrder(8, 1_001, 2, 3),
    )
    assert batch.authorisations == (OPERATOR,) * 4
    assert encode_batch(batch)[3] == 2  # re-encoded as the current version
