"""Idle polling (engine/idlepoll.py): one SCHED_IDLE spinner pinned per CPU, gone with
``stop``, with the CLI block, and with the process that started it, even on SIGKILL;
adaptive spinners park when their CPU is idle and run again when work arrives."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import pytest

from clearway.engine import cli as engine_cli
from clearway.engine import idlepoll
from clearway.engine.cli import idle_polling
from clearway.engine.idlepoll import IdlePoller, cpu_quota, wake_parked
from clearway.engine.loadgen import bench_genesis, command_stream
from clearway.engine.node import Node

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


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _until(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return False


def test_the_cli_default_is_adaptive_off_starts_nothing_and_the_bare_flag_means_always():
    parser = argparse.ArgumentParser()
    engine_cli.add_node_parser(parser.add_subparsers())
    base = ["node", "--data-dir", "x"]
    assert parser.parse_args(base).idle_poll is None  # the default: adaptive, unless it cannot help
    assert parser.parse_args(base + ["--idle-poll"]).idle_poll == "always"
    assert parser.parse_args(base + ["--idle-poll", "off"]).idle_poll == "off"
    with idle_polling(parser.parse_args(base + ["--idle-poll", "off"])) as nothing:
        assert nothing is None
    with idle_polling(parser.parse_args(base)) as poller:
        assert poller.running and poller.window_s == pytest.approx(300e-6)
        adaptive = [child.pid for child in poller._children]
    with idle_polling(parser.parse_args(base + ["--idle-poll", "--idle-poll-window-us", "50"])) as poller:
        assert poller.running and poller.window_s is None
        always = [child.pid for child in poller._children]
    with idle_polling(parser.parse_args(base + ["--idle-poll", "adaptive", "--idle-poll-window-us", "50"])) as poller:
        assert poller.window_s == pytest.approx(50e-6)
    assert _wait_gone(adaptive + always)
    with pytest.raises(SystemExit):
        idle_polling(parser.parse_args(base + ["--idle-poll-window-us", "0"]))
    with pytest.raises(ValueError):
        IdlePoller(window_s=0)


def test_the_default_steps_aside_under_a_cpu_quota_but_an_explicit_mode_does_not(monkeypatch, capsys):
    monkeypatch.setattr(idlepoll, "cpu_quota", lambda: 1.5)
    with idle_polling(argparse.Namespace(idle_poll=None, idle_poll_window_us=300.0)) as nothing:
        assert nothing is None
    assert "CPU quota of 1.5 CPUs" in capsys.readouterr().err
    with idle_polling(argparse.Namespace(idle_poll="adaptive", idle_poll_window_us=300.0)) as poller:
        assert poller.running


def test_cpu_quota_reads_cgroup_v2_and_v1_limits(tmp_path):
    (tmp_path / "v2" / "box").mkdir(parents=True)
    (tmp_path / "v2" / "self").write_text("0::/box\n")
    (tmp_path / "v2" / "box" / "cpu.max").write_text("150000 100000\n")
    assert cpu_quota(str(tmp_path / "v2"), str(tmp_path / "v2" / "self")) == 1.5
    (tmp_path / "v2" / "box" / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(str(tmp_path / "v2"), str(tmp_path / "v2" / "self")) is None
    (tmp_path / "v1" / "cpu,cpuacct" / "box").mkdir(parents=True)
    (tmp_path / "v1" / "self").write_text("4:memory:/box\n2:cpu,cpuacct:/box\n0::/\n")
    (tmp_path / "v1" / "cpu,cpuacct" / "box" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "v1" / "cpu,cpuacct" / "box" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(str(tmp_path / "v1"), str(tmp_path / "v1" / "self")) == 0.5
    (tmp_path / "v1" / "cpu,cpuacct" / "box" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(str(tmp_path / "v1"), str(tmp_path / "v1" / "self")) is None
    assert cpu_quota(str(tmp_path / "none"), str(tmp_path / "missing")) is None


def test_adaptive_spinners_park_on_an_idle_cpu_and_spin_again_when_woken():
    """Parked: the flag is set and the child sleeps on its pipe (state S, no CPU used).
    Woken: ``wake_parked`` clears the flag and writes; the child runs again and, once
    its CPU has been idle for the window, parks again, setting the flag itself (which
    a child still blocked on its pipe could not do)."""
    poller = IdlePoller(window_s=0.0005).start()  # (shorter than the kernel's tick: a tick is a busy gap)
    try:
        pids = [child.pid for child in poller._children]
        flags = poller._flags
        assert _until(lambda: all(flags[i] for i in range(len(pids))) and all(_state(p) == "S" for p in pids))
        wake_parked()
        assert poller.wakes == len(pids) and not any(flags[i] for i in range(len(pids)))
        assert _until(lambda: all(flags[i] for i in range(len(pids))))  # only a woken spinner sets it again
        wake_parked()
        assert poller.wakes == 2 * len(pids)
    finally:
        poller.stop()
    assert not poller.running and poller not in idlepoll._ACTIVE
    wake_parked()  # nothing registered: a no-op
    poller.wake()


def test_a_submission_to_the_node_wakes_parked_spinners(tmp_path):
    poller = IdlePoller(window_s=0.001).start()
    node = Node(tmp_path / "node", bench_genesis(), snapshot_every=0)
    try:
        flags = poller._flags
        assert _until(lambda: all(flags[i] for i in range(len(poller.cpus))))
        before = poller.wakes
        node.submit(next(command_stream())).result(timeout=30)
        assert poller.wakes > before
    finally:
        node.close(snapshot=False)
        poller.stop()


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
