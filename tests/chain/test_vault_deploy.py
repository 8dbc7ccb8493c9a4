"""Vault configuration is validated at deployment."""

import boa
import pytest
from vault_harness import GENESIS_CONFIG_HASH, VERIFIER_KEYS

from clearway.chain.contracts import (
    DEFAULT_FORCED_ACTION_DEADLINE,
    compile_contract,
    deploy_vault,
)

ZERO = "0x" + "00" * 20
VERIFIERS = [k.address for k in VERIFIER_KEYS]


@pytest.mark.parametrize(
    ("verifiers", "threshold", "deadline", "reason"),
    [
        ([], 1, 1, "no verifiers"),
        (VERIFIERS, 0, 1, "threshold out of range"),
        (VERIFIERS, 4, 1, "threshold out of range"),
        (VERIFIERS[:1] * 2, 1, 1, "duplicate verifier"),
        ([ZERO], 1, 1, "verifier is the zero address"),
        (VERIFIERS, 2, 0, "forced_action_deadline is zero"),
    ],
)
def test_bad_configurations_are_refused(token, sequencer, verifiers, threshold, deadline, reason):
    with boa.reverts(reason):
        deploy_vault(token, sequencer, verifiers, threshold, GENESIS_CONFIG_HASH, deadline)


def test_zero_addresses_are_refused(token, sequencer):
    with boa.reverts("token is the zero address"):
        deploy_vault(ZERO, sequencer, VERIFIERS, 2, GENESIS_CONFIG_HASH)
    with boa.reverts("sequencer is the zero address"):
        deploy_vault(token, ZERO, VERIFIERS, 2, GENESIS_CONFIG_HASH)


def test_default_forced_action_deadline_is_seven_days(token, sequencer):
    vault = deploy_vault(token, sequencer, VERIFIERS, 3, GENESIS_CONFIG_HASH)
    assert vault.forced_action_deadline() == DEFAULT_FORCED_ACTION_DEADLINE == 7 * 24 * 3600


def test_compiled_artefacts_for_rpc_chains():
    compiled = compile_contract("Vault")
    names = {item.get("name") for item in compiled.abi}
    assert {"submit_batch", "finalise_batch", "escape", "freeze", "withdraw"} <= names
    assert compiled.bytecode and compile_contract("Stablecoin").bytecode
    with pytest.raises(FileNotFoundError):
        compile_contract("Nope")
