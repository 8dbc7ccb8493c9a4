"""Where verifiers publish their attestation signatures, and who finalises.

``Vault.finalise_batch`` takes k signatures at once, and anyone may send it. Each verifier
signs on its own, so the signatures meet somewhere off chain — an *attestation board*:

- :class:`MemoryBoard`: in-process (embedded verifiers, the drill, tests);
- :class:`DirectoryBoard`: a shared directory, one JSON file per (batch, signer), written
  atomically (separate ``clearway verifier`` processes on one host, or a synced folder).

A verifier posts its signature, then finalises the next batch itself as soon as the board
holds ``threshold`` signatures that recover to distinct configured verifiers for exactly the
attestation the vault recorded (:func:`finalisable_signatures`). The sequencer's batcher
reads the same board through :class:`BoardAttestations` (its ``AttestationSource``); a race
between finalisers is harmless (the loser's transaction reverts: "batch is not the next to
finalise").
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Protocol

from clearway.chain.contracts import Attestation, Signature, recover_attestation_signer
from clearway.commitment import batch_data_hash


class AttestationBoard(Protocol):
    """Signatures by batch number and signer (checksummed address)."""

    def post(self, signer: str, attestation: Attestation, signature: Signature) -> None: ...

    def entries(self, batch_number: int) -> list[tuple[str, Attestation, Signature]]: ...


class MemoryBoard:
    """An in-process board (thread-safe)."""

    def __init__(self) -> None:
        self._entries: dict[int, dict[str, tuple[Attestation, Signature]]] = {}
        self._lock = threading.Lock()

    def post(self, signer: str, attestation: Attestation, signature: Signature) -> None:
        with self._lock:
            self._entries.setdefault(attestation.batch_number, {})[signer] = (attestation, signature)

    def entries(self, batch_number: int) -> list[tuple[str, Attestation, Signature]]:
        with self._lock:
            return [(s, a, sig) for s, (a, sig) in self._entries.get(batch_number, {}).items()]


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


class DirectoryBoard:
    """A board in a directory: ``<dir>/<batch number>/<signer>.json``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def post(self, signer: str, attestation: Attestation, signature: Signature) -> None:
        folder = self.directory / str(attestation.batch_number)
        folder.mkdir(exist_ok=True)
        body = {"signer": signer, "batch_number": attestation.batch_number, "prev_root": _hex(attestation.prev_root),
                "new_root": _hex(attestation.new_root), "data_hash": _hex(attestation.data_hash),
                "effects_hash": _hex(attestation.effects_hash), "v": signature.v, "r": _hex(signature.r),
                "s": _hex(signature.s)}
        tmp = folder / f".{signer}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(body))
        os.replace(tmp, folder / f"{signer}.json")

    def entries(self, batch_number: int) -> list[tuple[str, Attestation, Signature]]:
        folder = self.directory / str(batch_number)
        out = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            try:
                body = json.loads(path.read_text())
                attestation = Attestation(int(body["batch_number"]), _unhex(body["prev_root"]),
                                          _unhex(body["new_root"]), _unhex(body["data_hash"]),
                                          _unhex(body["effects_hash"]))
                out.append((str(body["signer"]), attestation,
                            Signature(int(body["v"]), _unhex(body["r"]), _unhex(body["s"]))))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a foreign or half-written file is not a signature
        return out


def finalisable_signatures(board: AttestationBoard, attestation: Attestation, chain_id: int, vault: str,
                           verifiers: set[str]) -> list[Signature]:
    """Signatures on the board for exactly ``attestation`` that recover to distinct members
    of ``verifiers`` (checksummed addresses): what ``finalise_batch`` counts."""
    out, seen = [], set()
    for _, posted, signature in board.entries(attestation.batch_number):
        if posted != attestation:
            continue
        try:
            signer = recover_attestation_signer(chain_id, vault, attestation, signature)
        except Exception:  # eth_keys raises several errors on a malformed signature
            continue
        if signer in verifiers and signer not in seen:
            seen.add(signer)
            out.append(signature)
    return out


class BoardAttestations:
    """The batcher's ``AttestationSource`` over a board: the signatures of a stored batch.

    ``before`` (optional) runs first — e.g. syncing embedded verifiers (``VerifierSet``)."""

    def __init__(self, board: AttestationBoard, client, before=None) -> None:
        self.board = board
        self.client = client
        self.before = before
        self._verifiers: set[str] | None = None

    def signatures(self, batch) -> list[Signature]:
        if self.before is not None:
            self.before()
        if self._verifiers is None:
            count = self.client.view("verifier_count")
            self._verifiers = {self.client.view("verifiers", i) for i in range(count)}
        attestation = Attestation(batch.batch_number, batch.prev_root, batch.new_root, batch_data_hash(batch.data),
                                  batch.effects.hash())
        return finalisable_signatures(self.board, attestation, self.client.chain.chain_id, self.client.address,
                                      self._verifiers)
