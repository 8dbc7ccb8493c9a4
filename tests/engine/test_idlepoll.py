"""Idle polling (engine/idlepoll.py): one SCHED_IDLE spinner pinned per CPU, gone with
``stop``, with the CLI block, and with the process that started it, even on SIGKILL."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import pytest

from clearway.engine.cli import idle_polling
from clearway.engine.idlepoll import IdlePoller

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux only")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_one_idle_priority_spinner_pinned_to_each_cpu_until_stopped():
    cpus = os.sched_getaffinity(0)
    poller = IdlePoller().start()
    try:
        pids = [child.pid for child in poller._children]
        assert len(pids) == len(cpus) and poller.running
        for pid, cpu in zip(pids, sorted(cpus)):
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
            assert os.sched_getaffinity(pid) == {cpu}
            with open(f"/proc/{pid}/comm") as f:
                assert f.read().strip() == "clearway-idle"
    finally:
        poller.stop()
    assert not poller.running
    assert _wait_gone(pids)


def test_the_cli_starts_pollers_only_when_asked():
    with idle_polling(argparse.Namespace(idle_poll=False)) as nothing:
        assert nothing is None
    with idle_polling(argparse.Namespace(idle_poll=True)) as poller:
        assert poller.running
        pids = [child.pid for child in poller._children]
    assert _wait_gone(pids)


def test_spinners_die_with_a_parent_killed_by_sigkill():
    script = ("from clearway.engine.idlepoll import IdlePoller; import time, sys; p = IdlePoller().start(); "
              "print(' '.join(str(c.pid) for c in p._children), flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert pids and all(_alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait_gone(pids)
    finally:
        if parent.poll() is None:
            parent.kill()
