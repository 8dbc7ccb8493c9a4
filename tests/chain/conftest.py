"""Fixtures for the vault tests: a stablecoin, a 2-of-3 vault, a harness."""

import boa
import pytest
from vault_harness import DEADLINE, GENESIS_CONFIG_HASH, VERIFIER_KEYS, Harness

from clearway.chain.contracts import deploy_stablecoin, deploy_vault
from clearway.commitment import CommittedState


@pytest.fixture(scope="session")
def sequencer() -> str:
    return boa.env.generate_address("sequencer")


@pytest.fixture(scope="session")
def token():
    return deploy_stablecoin()


@pytest.fixture(scope="session")
def vault(token, sequencer):
    return deploy_vault(
        token,
        sequencer,
        [key.address for key in VERIFIER_KEYS],
        2,
        GENESIS_CONFIG_HASH,
        forced_action_deadline=DEADLINE,
    )


@pytest.fixture
def harness(token, vault, sequencer) -> Harness:
    return Harness(token, vault, sequencer, CommittedState(GENESIS_CONFIG_HASH))


@pytest.fixture
def alice() -> str:
    return boa.env.generate_address("alice")


@pytest.fixture
def bob() -> str:
    return boa.env.generate_address("bob")
