"""A restarted verifier resumes from its own snapshot: it never signs anything different,
remembers the nonces it saw and keeps refusing what it refused."""

from __future__ import annotations

import pytest
from verifier_harness import scenario

from clearway.chain.vault import VaultClient
from clearway.commitment.batch import decode_batch
from clearway.commitment.exchange_state import committed_genesis_hash
from clearway.domain.commands import CancelAll, PlaceOrder
from clearway.verifier.alarms import AlarmCode
from clearway.verifier.drill import DEADLINE
from clearway.verifier.store import StoreMismatch
from clearway.verifier.verifier import Verifier, VerifierError


def _restart(s, i: int) -> Verifier:
    s.verifiers[i].close()
    s.verifiers[i] = s._verifier(i)
    return s.verifiers[i]


def test_a_restarted_verifier_resumes_from_its_snapshot_and_attests_the_next_batch(tmp_path):
    s = scenario(tmp_path)
    try:
        s.honest_prefix()
        verifier = _restart(s, 0)
        assert verifier.height == 2 and verifier.replica.root == s.client.batch_root(2)
        assert verifier.stats.batches == 2 and verifier.stats.signed_commands == 2
        s.trades()
        s.honest_batch()
        assert s.client.finalised_count() == 3
        assert verifier.height == 3 and verifier.store.attestation(3) is not None and verifier.alarms == []
    finally:
        s.close()


def test_a_verifier_restarted_from_an_older_snapshot_verifies_again_and_signs_the_same(tmp_path):
    s = scenario(tmp_path, snapshot_every=3)
    try:
        s.honest_prefix()
        verifier = s.verifiers[0]
        signed = [verifier.store.attestation(n) for n in (1, 2)]
        assert verifier.store.snapshot() is None  # none due yet
        verifier = _restart(s, 0)
        assert verifier.height == 0
        report = verifier.sync()
        assert verifier.height == 2 and report.attested == [] and report.alarms == []
        assert [verifier.store.attestation(n) for n in (1, 2)] == signed
        assert verifier.stats.batches == 2
        s.trades()
        s.honest_batch()
        assert verifier.height == 3 and verifier.store.snapshot().batch_number == 3
        assert s.client.finalised_count() == 3
    finally:
        s.close()


def test_a_signed_order_replayed_after_a_restart_is_refused_as_a_reused_nonce(tmp_path):
    s = scenario(tmp_path)
    try:
        s.honest_prefix()
        batch = decode_batch(s.client.batch_data(s.client.submitted_batches(s.start_block)[1]))
        (order, auth), = [(c, a) for c, a in zip(batch.commands, batch.authorisations)
                          if type(c) is PlaceOrder and a.signature]
        for i in range(3):
            _restart(s, i)
        s.seq.submit(order, auth=auth)  # alice's own signature, a second time
        number = s.seq.batch().batch_number
        s.sync()
        for verifier in s.verifiers:
            (alarm,) = [a for a in verifier.alarms if a.batch_number == number]
            assert alarm.code == AlarmCode.NONCE_REUSED and alarm.seq == s.seq.live.last_seq
        assert s.client.finalised_count() == 2
    finally:
        s.close()


def test_a_restarted_verifier_keeps_refusing_and_holds_the_last_good_state(tmp_path):
    s = scenario(tmp_path)
    try:
        s.honest_prefix()
        s.lie("a")
        verifier = _restart(s, 0)
        assert verifier.halted and verifier.refuse_from == 3 and verifier.height == 2
        assert verifier.replica.root == s.client.batch_root(2)
        s.seq.submit(CancelAll(0, 0, s.account("maker")))
        s.seq.batch()
        report = verifier.sync()
        assert report.refused == [3, 4, 5] and [a.code for a in report.alarms] == [AlarmCode.BUILT_ON_REFUSED]
        assert [a.batch_number for a in verifier.alarms] == [3, 4, 5]
        status = verifier.status()
        assert status["height"] == 2 and status["lag"] == 3 and status["refusing_from"] == 3
        assert [a["code"] for a in status["alarms"]] == ["ROOT_MISMATCH", "BUILT_ON_REFUSED", "BUILT_ON_REFUSED"]
    finally:
        s.close()


def test_a_verifier_refuses_a_foreign_data_directory_genesis_or_key(tmp_path):
    s = scenario(tmp_path)
    try:
        drill = s.drill
        other = VaultClient.deploy(drill.chain, drill.deployer, drill.sequencer.address,
                                   [k.address for k in drill.verifier_keys], 2, committed_genesis_hash(drill.genesis),
                                   DEADLINE)
        with pytest.raises(StoreMismatch):
            Verifier(other, drill.verifier_keys[0], drill.genesis, tmp_path / "s" / "verifier0")
        stranger = drill.chain.new_account("stranger")
        with pytest.raises(VerifierError, match="is not a verifier"):
            Verifier(s.client, stranger, drill.genesis, tmp_path / "stranger")
        from clearway.verifier.drill import drill_genesis

        with pytest.raises(VerifierError, match="genesis"):
            Verifier(s.client, drill.verifier_keys[0], drill_genesis(stranger.address, stranger.address),
                     tmp_path / "g")
    finally:
        s.close()
