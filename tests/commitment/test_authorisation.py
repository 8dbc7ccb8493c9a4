"""EIP-712 authorisation of account commands: digests match eth-account's EIP-712
implementation, signatures recover to the signer, malformed or replayed ones do not."""

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from clearway.commitment.authorisation import (
    OPERATOR, SECP256K1_N, Authorisation, AuthKind, command_digest, exchange_domain_separator,
    recover_signer, sign_command, type_string, typed_data,
)
from clearway.domain.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder, Withdraw

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
]


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
