"""Conservation over a whole lifecycle: everything deposited is withdrawn, escaped,
refunded or still in the vault, to the micro-USDC; and withdraw() cannot be re-entered."""

import random
from pathlib import Path

import boa
import pytest
from vault_harness import DEADLINE, GENESIS_CONFIG_HASH, VERIFIER_KEYS, Harness

from clearway.chain.contracts import deploy_vault
from clearway.commitment import (
    AccountLeaf,
    CommittedState,
    ForcedWithdrawalServed,
    InstrumentLeaf,
    Withdrawal,
    escape_value,
)

BTC_ENTRY, ETH_ENTRY = 60_000_000_000, 3_000_000_000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_micro_usdc_is_accounted_for(harness, vault, token, seed):
    rng = random.Random(seed)
    users = [boa.env.generate_address(f"user{i}") for i in range(8)]
    deposited = {u: rng.randint(5_000, 10_000) * 1_000_000 + rng.randint(0, 999_999) for u in users}
    for user, amount in deposited.items():
        harness.deposit(user, amount)
    cash = dict(deposited)

    # batch 1: the deposits are credited
    harness.submit_and_finalise(accounts=[AccountLeaf(i, u, cash[u]) for i, u in enumerate(users)])

    # batch 2: pairs trade BTC and ETH against each other (small enough that no account
    # can go under water: the domain's margin rules are not modelled here); user 0 withdraws
    positions: dict[str, list[tuple[int, int, int]]] = {u: [] for u in users}
    for a, b in zip(users[0::2], users[1::2], strict=True):
        btc = rng.randint(1, 500)  # 1e-4 BTC: at most 0.05 BTC
        eth = rng.randint(1, 2_000)  # 1e-3 ETH: at most 2 ETH
        positions[a] += [(1, btc, 0), (2, -eth, 0)]
        positions[b] += [(1, -btc, 0), (2, eth, 0)]
        cash[a] += -btc * BTC_ENTRY // 10**4 + eth * ETH_ENTRY // 10**3
        cash[b] += btc * BTC_ENTRY // 10**4 - eth * ETH_ENTRY // 10**3
    withdrawn = rng.randint(1, deposited[users[0]] // 2)
    cash[users[0]] -= withdrawn
    leaves = lambda: [AccountLeaf(i, u, cash[u], positions[u]) for i, u in enumerate(users)]  # noqa: E731
    harness.submit_and_finalise(
        accounts=leaves(),
        instruments=[InstrumentLeaf(1, BTC_ENTRY, 0, 4), InstrumentLeaf(2, ETH_ENTRY, 0, 3)],
        withdrawals=[Withdrawal(users[0], withdrawn)],
    )

    # batch 3: prices and funding move; user 1's forced withdrawal is served
    forced_amount = rng.randint(1, 1_000_000)
    served = vault.request_forced_withdrawal(forced_amount, sender=users[1])
    cash[users[1]] -= forced_amount
    instruments = [
        InstrumentLeaf(1, BTC_ENTRY + rng.randint(-9, 9) * 10**9, rng.randint(-10**12, 10**12), 4),
        InstrumentLeaf(2, ETH_ENTRY + rng.randint(-9, 9) * 10**8, rng.randint(-10**12, 10**12), 3),
    ]
    harness.submit_and_finalise(
        accounts=leaves(),
        instruments=instruments,
        forced=[ForcedWithdrawalServed(served, forced_amount)],
    )

    # a late deposit no batch includes, and a forced withdrawal the sequencer ignores
    late = rng.randint(1, 10**9)
    harness.deposit(users[2], late)
    ignored = vault.request_forced_withdrawal(1, sender=users[3])
    boa.env.time_travel(seconds=DEADLINE + 1)
    vault.freeze(ignored)

    paid_out = {u: 0 for u in users}
    for user in users[:2]:
        paid_out[user] += vault.withdraw(sender=user)
    paid_out[users[2]] += vault.refund_deposit(vault.deposit_count())
    harness.open_escape()
    harness.post_instruments()
    committed = harness.state.instrument_leaves()
    for index, user in enumerate(users):
        value = escape_value(harness.state.account(index), committed)
        if value > 0:
            assert harness.escape(index) == value
            paid_out[user] += value
        else:
            with boa.reverts("nothing to escape"):
                harness.escape(index)

    total_in = sum(deposited.values()) + late
    total_out = sum(paid_out.values())
    vault_balance = token.balanceOf(vault.address)
    assert total_in == total_out + vault_balance
    assert sum(token.balanceOf(u) for u in users) == total_out
    assert paid_out[users[0]] >= withdrawn and paid_out[users[2]] >= late
    # only per-position flooring (and floored negative accounts) stays behind
    assert vault_balance == vault.escape_pool()
    assert vault.total_claimable() == 0 and vault.refund_reserve() == 0


def test_withdraw_cannot_be_reentered(sequencer):
    here = Path(__file__).with_name("contracts")
    hook_token = boa.load(str(here / "HookToken.vy"))
    hook_vault = deploy_vault(
        hook_token, sequencer, [k.address for k in VERIFIER_KEYS], 2, GENESIS_CONFIG_HASH
    )
    attacker = boa.load(str(here / "Reenterer.vy"), hook_vault.address)
    harness = Harness(hook_token, hook_vault, sequencer, CommittedState(GENESIS_CONFIG_HASH))
    depositor = boa.env.generate_address()
    hook_token.mint(depositor, 100)
    hook_token.approve(hook_vault.address, 100, sender=depositor)
    hook_vault.deposit(100, sender=depositor)
    harness.submit_and_finalise(withdrawals=[Withdrawal(attacker.address, 40)])

    attacker.withdraw()

    assert attacker.reentry_attempts() == 1 and attacker.reentry_successes() == 0
    assert hook_token.balanceOf(attacker.address) == 40
    assert hook_token.balanceOf(hook_vault.address) == 60
    assert hook_vault.claimable(attacker.address) == 0
