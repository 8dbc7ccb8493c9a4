"""The checks besides the replay: deposits as the vault recorded them (in order, in time)
and order authorisation (EIP-712 signature of the owner, each nonce once)."""

from __future__ import annotations

import msgspec
import pytest
from eth_account import Account

from clearway.chain.vault import DepositEvent
from clearway.commitment.authorisation import OPERATOR, exchange_domain_separator, sign_command
from clearway.commitment.batch import Batch
from clearway.domain.commands import CancelOrders, Deposit, PlaceOrder, PlaceTwap, Withdraw
from clearway.domain.orders import OrderType, TimeInForce, TriggerSource
from clearway.domain.state import ExchangeState, apply
from clearway.verifier.alarms import AlarmCode
from clearway.verifier.checks import check_authorisations, check_deposits
from clearway.verifier.drill import drill_genesis

ALICE = Account.from_key(b"\x01" * 32)
BOB = Account.from_key(b"\x02" * 32)
MALLORY = Account.from_key(b"\x03" * 32)
GENESIS = drill_genesis("0x" + "aa" * 20, "0x" + "bb" * 20)
SEPARATOR = exchange_domain_separator(1, "0x" + "cc" * 20)


def _events(*rows) -> dict[int, DepositEvent]:
    return {i: DepositEvent(i, owner.address.lower(), amount, owner.address, block)
            for i, (owner, amount, block) in enumerate(rows, start=1)}


def _deposit(seq: int, who, amount: int, deposit_id: int) -> Deposit:
    return Deposit(seq, 0, who.address.lower(), amount, deposit_id)


VAULT = _events((ALICE, 100, 10), (BOB, 200, 11), (ALICE, 300, 12))


def _check(commands, last_included=0, block=20, window=None):
    return check_deposits(Batch(1, tuple(commands)), VAULT, last_included, block, window, ExchangeState(GENESIS))


def test_deposits_in_vault_order_pass():
    findings, count = _check([_deposit(1, ALICE, 100, 1), _deposit(2, BOB, 200, 2)], window=9)
    assert findings == [] and count == 2


def test_a_deposit_with_another_owner_or_amount_than_the_vaults_is_a_mismatch():
    (finding,), _ = _check([_deposit(1, MALLORY, 100, 1)])
    assert finding.code == AlarmCode.DEPOSIT_MISMATCH and finding.seq == 1
    assert {a.owner for a in finding.accounts} == {ALICE.address.lower(), MALLORY.address.lower()}
    (finding,), _ = _check([_deposit(1, ALICE, 101, 1)])
    assert finding.code == AlarmCode.DEPOSIT_MISMATCH


def test_a_deposit_the_vault_never_saw_or_already_included_is_a_mismatch():
    (finding,), _ = _check([_deposit(1, ALICE, 100, 9)])
    assert finding.code == AlarmCode.DEPOSIT_MISMATCH and "no deposit 9" in finding.message
    (finding,), _ = _check([_deposit(1, ALICE, 100, 1)], last_included=1)
    assert finding.code == AlarmCode.DEPOSIT_MISMATCH and "already included" in finding.message


def test_a_deposit_included_past_a_missing_one_names_the_skipped_depositor():
    (finding,), _ = _check([_deposit(1, ALICE, 100, 1), _deposit(2, ALICE, 300, 3)])
    assert finding.code == AlarmCode.DEPOSIT_SKIPPED and finding.seq == 2
    assert [a.owner for a in finding.accounts] == [BOB.address.lower()]


def test_a_deposit_older_than_the_window_must_be_included():
    (finding,), _ = _check([_deposit(1, ALICE, 100, 1)], block=21, window=10)
    assert finding.code == AlarmCode.DEPOSIT_OVERDUE and finding.seq is None
    assert "deposit 2" in finding.message and [a.owner for a in finding.accounts] == [BOB.address.lower()]
    assert _check([_deposit(1, ALICE, 100, 1)], block=20, window=10)[0] == []
    assert _check([], block=10_000, window=None)[0] == []


def _state_with_accounts() -> ExchangeState:
    state = ExchangeState(GENESIS)
    for seq, who in enumerate((ALICE, BOB), start=1):
        apply(state, _deposit(seq, who, 1_000, seq))
    return state


def _order(seq: int, account: int) -> PlaceOrder:
    return PlaceOrder(seq, 0, account, 0, 1, 10, 1_000_000)


def test_orders_signed_by_their_owner_pass_and_operator_ones_are_counted():
    state = _state_with_accounts()
    signed = _order(3, 2)
    auth = sign_command(ALICE.key, SEPARATOR, signed, ALICE.address, 7)
    batch = Batch(2, (signed, _order(4, 3), Withdraw(5, 0, 3, 1)), (auth, OPERATOR, OPERATOR))
    result = check_authorisations(batch, state, SEPARATOR, lambda owner, nonce: False)
    assert result.findings == [] and (result.signed, result.operator_attested) == (1, 2)
    assert result.nonces == [(ALICE.address.lower(), 7)]


def test_an_order_signed_by_another_key_or_for_a_missing_account_is_a_bad_signature():
    state = _state_with_accounts()
    forged = sign_command(MALLORY.key, SEPARATOR, _order(3, 2), ALICE.address, 7)
    ghost = sign_command(ALICE.key, SEPARATOR, _order(4, 9), ALICE.address, 8)
    batch = Batch(2, (_order(3, 2), _order(4, 9)), (forged, ghost))
    result = check_authorisations(batch, state, SEPARATOR, lambda owner, nonce: False)
    assert [(f.code, f.seq) for f in result.findings] == [(AlarmCode.BAD_SIGNATURE, 3), (AlarmCode.BAD_SIGNATURE, 4)]
    assert MALLORY.address.lower() in result.findings[0].message
    assert [a.account for a in result.findings[0].accounts] == [2]


def test_a_nonce_used_twice_in_a_batch_or_in_an_earlier_one_is_refused():
    state = _state_with_accounts()
    first = sign_command(ALICE.key, SEPARATOR, _order(3, 2), ALICE.address, 7)
    again = sign_command(ALICE.key, SEPARATOR, _order(4, 2), ALICE.address, 7)
    batch = Batch(2, (_order(3, 2), _order(4, 2)), (first, again))
    result = check_authorisations(batch, state, SEPARATOR, lambda owner, nonce: False)
    assert [(f.code, f.seq) for f in result.findings] == [(AlarmCode.NONCE_REUSED, 4)]
    used = {(ALICE.address.lower(), 7)}
    result = check_authorisations(Batch(2, (_order(3, 2),), (first,)), state, SEPARATOR,
                                  lambda owner, nonce: (owner, nonce) in used)
    assert [f.code for f in result.findings] == [AlarmCode.NONCE_REUSED]


# issue 9: advanced orders, TWAPs and batch cancels are signed over every field the owner chose
ADVANCED = (
    PlaceOrder(3, 0, 2, 0, -1, 10, 900_000, OrderType.STOP_LIMIT, TimeInForce.GTC, trigger_price=950_000,
               trigger=TriggerSource.INDEX, expire_at=86_400_000),
    PlaceOrder(3, 0, 2, 0, 1, 40, 1_000_000, display_size=10, expire_at=86_400_000),
    PlaceTwap(3, 0, 2, 0, 1, 40, 600_000, 60_000, 1_000, 0, False, "t"),
    CancelOrders(3, 0, 2, (11, 12, 13)),
)
TAMPERING = [
    (0, "trigger_price", 940_000), (0, "trigger", TriggerSource.MARK), (0, "expire_at", 0),
    (0, "order_type", OrderType.STOP_MARKET), (1, "display_size", 20), (1, "display_size", 0),
    (1, "expire_at", 86_400_001), (1, "expire_at", 0), (2, "size", 41), (2, "duration_ms", 1_200_000),
    (2, "interval_ms", 30_000), (2, "price_tolerance_ppm", 999_999), (2, "limit_price", 1_000_000),
    (2, "reduce_only", True), (2, "client_order_id", "u"), (2, "side", -1), (3, "order_ids", (11, 12)),
    (3, "order_ids", (11, 13, 12)), (3, "order_ids", (11, 12, 13, 14)),
]


def test_signed_advanced_orders_twaps_and_batch_cancels_pass():
    state = _state_with_accounts()
    auths = tuple(sign_command(ALICE.key, SEPARATOR, c, ALICE.address, 10 + i) for i, c in enumerate(ADVANCED))
    commands = tuple(msgspec.structs.replace(c, seq=3 + i) for i, c in enumerate(ADVANCED))
    result = check_authorisations(Batch(2, commands, auths), state, SEPARATOR, lambda owner, nonce: False)
    assert result.findings == [] and result.signed == 4


@pytest.mark.parametrize(("which", "field", "value"), TAMPERING, ids=lambda v: str(v))
def test_a_field_changed_after_signing_is_a_bad_signature(which, field, value):
    state = _state_with_accounts()
    genuine = ADVANCED[which]
    auth = sign_command(ALICE.key, SEPARATOR, genuine, ALICE.address, 7)
    changed = msgspec.structs.replace(genuine, **{field: value})
    assert changed != genuine
    result = check_authorisations(Batch(2, (changed,), (auth,)), state, SEPARATOR, lambda owner, nonce: False)
    assert [(f.code, f.seq) for f in result.findings] == [(AlarmCode.BAD_SIGNATURE, 3)]
    assert [a.account for a in result.findings[0].accounts] == [2]
