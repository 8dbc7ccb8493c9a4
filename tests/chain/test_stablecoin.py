"""The 6-decimal test stablecoin: ERC-20 behaviour and a deployer-only mint."""

import boa


def test_metadata(token):
    assert token.decimals() == 6
    assert token.name() == "Clearway Test USD"
    assert token.symbol() == "cwUSD"


def test_only_the_deployer_mints(token, alice):
    token.mint(alice, 5_000_000)
    assert token.balanceOf(alice) == 5_000_000 and token.totalSupply() == 5_000_000
    with boa.reverts("only the minter may mint"):
        token.mint(alice, 1, sender=alice)


def test_transfer_moves_balance_and_refuses_overdraft(token, alice, bob):
    token.mint(alice, 10)
    assert token.transfer(bob, 4, sender=alice)
    assert (token.balanceOf(alice), token.balanceOf(bob)) == (6, 4)
    with boa.reverts("insufficient balance"):
        token.transfer(bob, 7, sender=alice)
    with boa.reverts("transfer to the zero address"):
        token.transfer("0x" + "00" * 20, 1, sender=alice)


def test_transfer_from_spends_allowance_unless_infinite(token, alice, bob):
    token.mint(alice, 100)
    token.approve(bob, 30, sender=alice)
    token.transferFrom(alice, bob, 20, sender=bob)
    assert token.allowance(alice, bob) == 10
    with boa.reverts("insufficient allowance"):
        token.transferFrom(alice, bob, 11, sender=bob)
    token.approve(bob, 2**256 - 1, sender=alice)
    token.transferFrom(alice, bob, 50, sender=bob)
    assert token.allowance(alice, bob) == 2**256 - 1
    assert token.balanceOf(bob) == 70
