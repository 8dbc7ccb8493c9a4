# pragma version ~=0.4.3
# pragma evm-version cancun
# Test-only receiver: when paid, tries to call the vault's withdraw() again.

vault: public(address)
reentry_attempts: public(uint256)
reentry_successes: public(uint256)


@deploy
def __init__(vault_: address):
    self.vault = vault_


@external
def withdraw():
    raw_call(self.vault, method_id("withdraw()"))


@external
def on_token_received():
    if msg.sender == self.vault:
        return
    self.reentry_attempts += 1
    ok: bool = raw_call(self.vault, method_id("withdraw()"), revert_on_failure=False)
    if ok:
        self.reentry_successes += 1
