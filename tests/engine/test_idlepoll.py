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


def test_the_cli_default_is_adaptive_off_starts_nothing_and_the_bare_flag_means_always(monkeypatch):
    monkeypatch.setattr(idlepoll, "cpu_quota", lambda: None)  # (a CI container may have one)
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
    with idle_polling(parser.parse_args(base + ["--idle-poll", "always", "--idle-poll-window-us", "0"])) as poller:
        assert poller.window_s is None  # (the window is adaptive polling's only)
    with pytest.raises(ValueError):
        IdlePoller(window_s=0)


def test_spinners_that_cannot_start_end_an_explicit_mode_but_only_skip_the_default(monkeypatch, capsys):
    def refuse(self):
        raise OSError("no SCHED_IDLE here")

    monkeypatch.setattr(idlepoll, "cpu_quota", lambda: None)
    monkeypatch.setattr(IdlePoller, "start", refuse)
    with pytest.raises(SystemExit, match="--idle-poll always: no SCHED_IDLE here"):
        idle_polling(argparse.Namespace(idle_poll="always", idle_poll_window_us=300.0))
    with idle_polling(argparse.Namespace(idle_poll=None, idle_poll_window_us=300.0)) as nothing:
        assert nothing is None
    assert "no idle polling: no SCHED_IDLE here" in capsys.readouterr().err


def test_the_default_steps_aside_under_a_cpu_quota_but_an_explicit_mode_does_not(monkeypatch, capsys):
    cpus = len(os.sched_getaffinity(0))
    monkeypatch.setattr(idlepoll, "cpu_quota", lambda: cpus - 0.5)
    with idle_polling(argparse.Namespace(idle_poll=None, idle_poll_window_us=300.0)) as nothing:
        assert nothing is None
    assert f"CPU quota of {cpus - 0.5:g} CPUs" in capsys.readouterr().err
    with idle_polling(argparse.Namespace(idle_poll="adaptive", idle_poll_window_us=300.0)) as poller:
        assert poller.running
    monkeypatch.setattr(idlepoll, "cpu_quota", lambda: float(cpus))  # as much as it can use: no harm
    with idle_polling(argparse.Namespace(idle_poll=None, idle_poll_window_us=300.0)) as poller:
        assert poller.running


def _cgroups(tmp_path, membership: str, mounts: list[tuple[str, str, str, str]], files: dict[str, str]):
    """Fake /proc/self/cgroup, /proc/self/mountinfo (root, mount point under tmp_path,
    fstype, super options) and cgroup files (path under tmp_path → content)."""
    tmp_path.mkdir()
    (tmp_path / "cgroup").write_text(membership)
    (tmp_path / "mountinfo").write_text("".join(
        f"{30 + i} 25 0:{26 + i} {root} {tmp_path / point} rw,nosuid shared:9 - {fstype} cgroup {options}\n"
        for i, (root, point, fstype, options) in enumerate(mounts)) + "22 1 8:1 / / rw - ext4 /dev/vda rw\n")
    for path, content in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(content)
    return cpu_quota(str(tmp_path / "cgroup"), str(tmp_path / "mountinfo"))


def test_cpu_quota_reads_the_tightest_limit_up_the_cgroup_tree(tmp_path):
    v2 = [("/", "v2", "cgroup2", "rw,nsdelegate")]
    # cgroup v2, a limit on the parent (a slice) and none on the process's own group
    assert _cgroups(tmp_path / "a", "0::/box/sub\n", v2,
                    {"v2/box/cpu.max": "150000 100000\n", "v2/box/sub/cpu.max": "max 100000\n"}) == 1.5
    assert _cgroups(tmp_path / "b", "0::/box/sub\n", v2,
                    {"v2/box/cpu.max": "150000 100000\n", "v2/box/sub/cpu.max": "50000 100000\n"}) == 0.5
    assert _cgroups(tmp_path / "c", "0::/box\n", v2, {"v2/box/cpu.max": "max 100000\n"}) is None
    # no cgroup namespace (docker --cgroupns=host): the mount shows only the container's subtree
    assert _cgroups(tmp_path / "d", "0::/docker/abc\n", [("/docker/abc", "v2", "cgroup2", "rw")],
                    {"v2/cpu.max": "200000 100000\n"}) == 2.0
    # cgroup v1, cpu and cpuacct mounted together; another hierarchy's lines are ignored
    v1 = [("/", "cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"), ("/", "memory", "cgroup", "rw,memory")]
    limit = {"cpu,cpuacct/box/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/box/cpu.cfs_period_us": "100000\n",
             "memory/box/cpu.cfs_quota_us": "1000\n", "memory/box/cpu.cfs_period_us": "100000\n"}
    assert _cgroups(tmp_path / "e", "4:memory:/box\n2:cpu,cpuacct:/box\n0::/\n", v1, limit) == 0.5
    unlimited = dict(limit, **{"cpu,cpuacct/box/cpu.cfs_quota_us": "-1\n"})
    assert _cgroups(tmp_path / "f", "2:cpu,cpuacct:/box\n", v1, unlimited) is None
    assert cpu_quota(str(tmp_path / "missing"), str(tmp_path / "missing")) is None


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


def test_stop_closes_the_pipes_and_the_shared_flags():
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    poller = IdlePoller(window_s=0.0005).start()
    assert open_fds() == before + 2 * len(poller.cpus) + 1  # per spinner: its wake pipe, its stderr; the flags (mmap)
    poller.stop()
    assert open_fds() == before
    poller.wake()  # stopped: a no-op


def test_a_submission_to_the_node_wakes_parked_spinners(tmp_path):
    poller = IdlePoller(window_s=0.0005).start()
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


def test_the_websocket_server_wakes_spinners_on_every_read(monkeypatch):
    import clearway.api.wsproto as wsproto

    calls = []
    monkeypatch.setattr(wsproto, "wake_parked", lambda: calls.append(1))
    protocol = wsproto.CoalescingWebSocketProtocol.__new__(wsproto.CoalescingWebSocketProtocol)
    monkeypatch.setattr(wsproto.WebSocketsSansIOProtocol, "data_received", lambda self, data: None)
    protocol.data_received(b"x")
    protocol.data_received(b"y")
    assert calls == [1, 1]
