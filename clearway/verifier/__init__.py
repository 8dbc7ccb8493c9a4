"""Verifiers: independent replay of the chain's batches, attestations, refusal of wrong roots,
and the escape tool (DESIGN.md "Trust model").

- ``verifier``: :class:`Verifier` follows one vault, replays each batch from its calldata
  with the domain's ``apply()`` and attests the roots it reproduces, or refuses with an
  alarm (``alarms``) and keeps refusing; it persists its progress (``store``) and resumes
  after a restart; ``checks`` and ``prices`` hold the checks besides the replay;
- ``board``: where verifiers' signatures meet and batches get finalised;
- ``escape``: rebuilding the frozen vault's last finalised state from chain data only and
  escaping accounts (``clearway escape``);
- ``drill`` / ``drill_sequencer``: ``clearway verifier drill`` (honest batches attested,
  seven kinds of lie refused, freeze and escape); ``cli``: the commands; ``connect``:
  reaching a deployment from the command line.

:class:`VerifierSet` runs several verifiers in one process (the embedded mode of the demo
and tests) and is the batcher's attestation source. Importing this package loads nothing
heavy.
"""

from __future__ import annotations

from typing import Any


class VerifierSet:
    """Embedded verifiers sharing one attestation board.

    As the batcher's ``AttestationSource`` (``signatures(stored_batch)``) it syncs every
    verifier, then returns the valid signatures on the board for that batch. When a batcher
    finalises, build the verifiers with ``VerifierConfig(finalise=False)``.
    """

    def __init__(self, verifiers: list, board: Any) -> None:
        from clearway.verifier.board import BoardAttestations

        self.verifiers = verifiers
        self.board = board
        self._source = BoardAttestations(board, verifiers[0].client, before=self.sync) if verifiers else None

    def sync(self) -> list:
        return [v.sync() for v in self.verifiers]

    def signatures(self, batch) -> list:
        return self._source.signatures(batch) if self._source is not None else []

    @property
    def alarms(self) -> list:
        return [a for v in self.verifiers for a in v.alarms]

    def close(self) -> None:
        for verifier in self.verifiers:
            verifier.close()


__all__ = ["VerifierSet"]
