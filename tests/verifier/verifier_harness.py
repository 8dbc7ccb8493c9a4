"""A drill scenario for tests: one vault on a fresh embedded chain, its in-process
sequencer (honest unless told otherwise) and three verifiers (threshold 2) in ``tmp``."""

from __future__ import annotations

from pathlib import Path

from clearway.verifier.drill import Drill, Scenario


def scenario(tmp: Path, label: str = "s", **config) -> Scenario:
    """A scenario whose verifiers use the drill's config updated with ``config``."""
    drill = Drill(tmp)
    if config:
        from dataclasses import replace

        drill.config = replace(drill.config, **config)
    return Scenario(drill, label)


def first_alarms(s: Scenario, batch_number: int) -> list:
    """Each verifier's first alarm about ``batch_number`` (None where it has none)."""
    out = []
    for verifier in s.verifiers:
        mine = [a for a in verifier.alarms if a.batch_number == batch_number]
        out.append(mine[0] if mine else None)
    return out
