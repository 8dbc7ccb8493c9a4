"""The attestation board: signatures meet there; only valid, distinct verifier signatures
of exactly the vault's attestation count."""

from __future__ import annotations

from eth_account import Account

from clearway.chain.contracts import Attestation, sign_attestation
from clearway.verifier.board import DirectoryBoard, MemoryBoard, finalisable_signatures

VAULT = "0x" + "cc" * 20
KEYS = [Account.from_key(bytes([i + 1]) * 32) for i in range(4)]
VERIFIERS = {k.address for k in KEYS[:3]}
ATTESTATION = Attestation(7, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32)
OTHER = Attestation(7, b"\x01" * 32, b"\x09" * 32, b"\x03" * 32, b"\x04" * 32)


def _post(board, key, attestation=ATTESTATION, as_signer=None):
    board.post(as_signer or key.address, attestation, sign_attestation(key.key, 1, VAULT, attestation))


def test_only_distinct_verifier_signatures_of_the_same_attestation_count(tmp_path):
    for board in (MemoryBoard(), DirectoryBoard(tmp_path / "board")):
        _post(board, KEYS[0])
        _post(board, KEYS[1], OTHER)  # another root: not this attestation
        _post(board, KEYS[3])  # not a verifier
        _post(board, KEYS[0], as_signer="0xdup")  # the same key twice
        assert len(finalisable_signatures(board, ATTESTATION, 1, VAULT, VERIFIERS)) == 1
        _post(board, KEYS[2])
        assert len(finalisable_signatures(board, ATTESTATION, 1, VAULT, VERIFIERS)) == 2
        assert finalisable_signatures(board, ATTESTATION, 1, "0x" + "dd" * 20, VERIFIERS) == []


def test_a_directory_board_survives_a_reopen_and_ignores_foreign_files(tmp_path):
    board = DirectoryBoard(tmp_path)
    _post(board, KEYS[0])
    (tmp_path / "7" / "junk.json").write_text("{not json")
    entries = DirectoryBoard(tmp_path).entries(7)
    assert [(s, a) for s, a, _ in entries] == [(KEYS[0].address, ATTESTATION)]
    assert DirectoryBoard(tmp_path).entries(8) == []
