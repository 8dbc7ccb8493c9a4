"""Idle polling: keep the machine's CPUs from halting while they wait for work.

On a virtual machine an idle vCPU executes HLT and leaves the guest; waking a thread on
it (a packet arriving, a commit's fsync completing, one thread handing work to another)
then goes through the hypervisor. On the 2-vCPU bench VM — booted with
``haltpoll.guest_halt_poll_ns=0``, so the guest never polls before halting — such a
wake-up costs ~100 µs, and one order's round trip through the API has five of them
(client, event loop, committer, fsync completion, event loop again): about half of its
median latency at 2,000 orders/s (README, "Trading API").

``IdlePoller`` starts one child process per CPU, pinned to it, that spins in a loop at
``SCHED_IDLE`` priority: Linux runs it only when nothing else wants that CPU and
preempts it at once when a normal thread wakes there, so the CPU never halts and a
wake-up is a context switch inside the guest. This is the user-space form of the
kernel's ``idle=poll`` or of guest halt polling (``cpuidle-haltpoll``), the usual
setting on low-latency trading hosts; it needs no privileges, and it burns idle time of
the CPUs it covers (power, and a hyper-threaded sibling's share of its core). Not under a
CPU quota: a ``SCHED_IDLE`` task still counts against a cgroup's CPU limit (``cpu.max``,
a container's CPU limit), so the spinners would use up the quota and get the node's own
threads throttled; ``clearway node`` leaves its default out there (``cpu_quota``).

Two modes (``window_s``):

- Always (``window_s=None``): each spinner spins whenever its CPU is idle. Every wake-up is
  cheap, but the vCPUs look 100 % busy to the host, and a host that is short of CPU
  preempts busy vCPUs for milliseconds at a time (on the bench VM: 15–21 gaps of
  0.5–3 ms per vCPU per 10 s), which shows in the tail.
- Adaptive (``window_s`` > 0; the node's default, ``ADAPTIVE_WINDOW_S``): the user-space
  form of guest halt polling. A spinner spins only until its CPU has been idle for
  ``window_s`` (it notices the CPU was busy as a gap in its own clock readings), then
  parks on a pipe and lets the CPU halt. ``wake()`` (or the module's ``wake_parked()``,
  which the node calls whenever a submission opens a batch and the WebSocket server on
  every read) unparks the parked spinners of every CPU: one write per parked spinner,
  and only a search of the flag bytes (one per spinner, in shared memory) when none is
  parked. So the CPUs
  poll through the wake-ups inside one order's round trip (hand-offs between threads,
  the fsync's completion, the answer to the client) and halt again once the traffic
  stops. A wake that races with a spinner going to park can be missed: the spinner
  then parks until the next one (a latency hint, never a correctness matter).
  Measured on the bench VM (8 alternating rounds of 4-s paced runs at 2,000 orders/s,
  README "Trading API"): median p50 0.85 ms in both modes against 1.08 ms without
  polling, but p99 above 5 ms in 5 of 8 runs always polling, 0 of 8 adaptive.

The spinners cover the CPUs this process may run on (``os.sched_getaffinity``): on a large
machine, pin the node (``taskset``) so that a wake-up writes to a few spinners, not to
one per CPU of the machine. A spinner that dies is not restarted (``running`` is true
while any lives).

The children die with the thread that started them (``PR_SET_PDEATHSIG``: start them from
the main thread, or one that lives as long as they should; from a worker thread that
ends, polling silently stops), even if the process is killed with SIGKILL; ``stop()`` ends
them earlier.
"""

from __future__ import annotations

import mmap
import os
import select
import signal
import subprocess
import sys
import threading

_PR_SET_PDEATHSIG = 1
_START_TIMEOUT_S = 30.0
_BUSY_GAP_S = 5e-6  # a gap this long between two clock readings: the CPU ran something else
ADAPTIVE_WINDOW_S = 300e-6
"""Adaptive idle polling's default window: a spinner parks once its CPU has been idle this
long. About the longest wait inside one order's round trip on the bench VM (the fsync,
0.2–0.4 ms), shorter than the 0.5 ms between orders at 2,000/s, and well under the
kernel's tick (whose interrupt counts as busy); measured against 150 and 600 µs (README,
"Trading API")."""
IDLE_POLL_MODES = ("adaptive", "always", "off")
"""``clearway node --idle-poll`` values (engine/cli.py)."""
_ACTIVE: list["IdlePoller"] = []  # started adaptive pollers of this process (wake_parked)


def cpu_quota(membership: str = "/proc/self/cgroup", mountinfo: str = "/proc/self/mountinfo") -> float | None:
    """The tightest CPU limit on this process's cgroup and its ancestors, in CPUs (quota /
    period: ``cpu.max``, cgroup v2; ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, v1), or
    None when there is none or it cannot be read.

    The process's cgroup path (``membership``) is mapped to a directory through the
    cgroup mount's root (``mountinfo``), so that a container without a cgroup namespace,
    whose mount shows only its own subtree, is read right; limits are inherited, so every
    level up to the mount is read and the smallest counts."""
    try:
        with open(membership) as f:
            groups = [line.split(":", 2) for line in f.read().splitlines() if line.count(":") >= 2]
        with open(mountinfo) as f:
            mounts = f.read().splitlines()
    except OSError:
        return None
    limits = []
    for _, controllers, path in groups:
        v2 = controllers == ""
        if not v2 and "cpu" not in controllers.split(","):
            continue
        for mount in mounts:
            fields = mount.split()
            if "-" not in fields:
                continue
            dash = fields.index("-")
            fstype, options = fields[dash + 1], fields[dash + 3].split(",") if len(fields) > dash + 3 else []
            if (fstype != "cgroup2") if v2 else (fstype != "cgroup" or "cpu" not in options):
                continue
            root, point = fields[3].rstrip("/"), fields[4]
            if root and not (path == root or path.startswith(root + "/")):
                continue
            level = point + path[len(root):].rstrip("/")
            while True:
                limit = _cpu_limit(level, v2)
                if limit is not None:
                    limits.append(limit)
                if len(level) <= len(point):
                    break
                level = os.path.dirname(level)
    return min(limits) if limits else None


def _cpu_limit(directory: str, v2: bool) -> float | None:
    """The CPU limit set in one cgroup directory (None: none, or unreadable)."""
    try:
        if v2:
            with open(os.path.join(directory, "cpu.max")) as f:
                quota, period = f.read().split()
            return None if quota == "max" else int(quota) / int(period)
        with open(os.path.join(directory, "cpu.cfs_quota_us")) as f:
            quota_us = int(f.read())
        with open(os.path.join(directory, "cpu.cfs_period_us")) as f:
            period_us = int(f.read())
        return quota_us / period_us if quota_us > 0 else None
    except (OSError, ValueError):
        return None


def start_default(window_s: float | None = ADAPTIVE_WINDOW_S) -> tuple["IdlePoller | None", str | None]:
    """The node's default idle polling (adaptive, ``window_s``; None polls always), started:
    (poller, None); or (None, why not) under a CPU quota smaller than the CPUs this process may use
    (``cpu_quota``) or where the spinners cannot start. Used by ``clearway node`` and the
    node and API benchmarks."""
    quota = cpu_quota()
    if quota is not None and quota < len(os.sched_getaffinity(0)):
        return None, f"a CPU quota of {quota:g} CPUs"
    try:
        return IdlePoller(window_s=window_s).start(), None
    except OSError as exc:
        return None, str(exc)


def wake_parked() -> None:
    """Unpark the parked spinners of every adaptive IdlePoller started in this process
    (measured on the 2-CPU bench VM with timeit: 0.06 µs with no poller, 0.22 µs with
    none parked; a write per parked spinner beyond that). Call it when work
    arrives: the node does whenever a submission opens a batch (``Node._dispatch``: the
    first command of each batch, a group, a release of held commands), the WebSocket
    server on every read."""
    for poller in _ACTIVE:
        poller.wake()


class IdlePoller:
    """One ``SCHED_IDLE`` spinning child process per CPU in ``cpus`` (default: every CPU
    this process may run on). Use as a context manager, or ``start()`` / ``stop()``.

    ``window_s``: None spins always; a positive number (seconds) is the adaptive mode's
    window (module docstring). Raises ValueError for a window ≤ 0, and OSError from
    ``start`` if a child cannot be started (e.g. no ``SCHED_IDLE``, which is Linux-only)."""

    def __init__(self, cpus: set[int] | None = None, window_s: float | None = None) -> None:
        if window_s is not None and not window_s > 0:
            raise ValueError(f"window_s must be positive or None, not {window_s!r}")
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        self.window_s = window_s
        self._children: list[subprocess.Popen] = []
        self._flags: mmap.mmap | None = None  # adaptive: byte i = 1 while spinner i is parked
        self._wake_fds: list[int] = []  # adaptive: write end of spinner i's pipe
        self._waking = threading.Lock()  # one waker at a time; stop() takes it before closing the pipes
        self.wakes = 0  # writes that unparked a spinner

    @property
    def running(self) -> bool:
        return any(child.poll() is None for child in self._children)

    def start(self) -> "IdlePoller":
        if self._children:
            return self
        if not hasattr(os, "SCHED_IDLE"):
            raise OSError("idle polling needs Linux's SCHED_IDLE")
        parent = str(os.getpid())
        shared = -1
        try:
            if self.window_s is not None:
                shared = os.memfd_create("clearway-idle-flags")
                os.ftruncate(shared, len(self.cpus))
                self._flags = mmap.mmap(shared, len(self.cpus))
            for index, cpu in enumerate(self.cpus):
                args = [sys.executable, "-I", "-S", "-c", _CHILD, parent, str(cpu)]
                keep: tuple[int, ...] = ()
                if shared >= 0:
                    parked, wake = os.pipe()
                    os.set_blocking(wake, False)  # a waker never blocks (a full pipe: the spinner is awake)
                    self._wake_fds.append(wake)
                    args += [str(self.window_s), str(shared), str(index), str(parked)]
                    keep = (shared, parked)
                try:
                    child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.PIPE, pass_fds=keep)
                finally:
                    if keep:
                        os.close(keep[1])  # the child's end
                self._children.append(child)
                if not select.select([child.stderr], [], [], _START_TIMEOUT_S)[0]:
                    raise OSError(f"idle poller for CPU {cpu} did not start within {_START_TIMEOUT_S} s")
                line = child.stderr.readline()  # the child reports once it is set up
                if line.strip() != b"ready":
                    rest = line + child.stderr.read() if child.poll() is not None else line
                    raise OSError(f"idle poller for CPU {cpu} did not start: {rest.decode(errors='replace')[-500:]}")
            if self._flags is not None:
                _ACTIVE.append(self)
        except BaseException:
            self.stop()
            raise
        finally:
            if shared >= 0:
                os.close(shared)  # the parent's mapping and the children's stay
        return self

    def wake(self) -> None:
        """Unpark this poller's parked spinners (adaptive mode; a no-op otherwise). Safe
        from any thread: a call that finds another waking returns at once (that one
        covers it), and ``stop`` closes the pipes only under the same lock."""
        flags = self._flags
        try:
            if flags is None or flags.find(b"\x01") < 0:  # nobody parked: the common case, no lock
                return
        except ValueError:  # stop() closed the flags meanwhile
            return
        if not self._waking.acquire(blocking=False):
            return
        try:
            flags = self._flags
            if flags is None:  # stopped meanwhile
                return
            for index, fd in enumerate(self._wake_fds):
                if flags[index]:
                    flags[index] = 0
                    try:
                        os.write(fd, b"w")
                        self.wakes += 1
                    except OSError:  # that spinner is gone (EPIPE), or its pipe is full (awake)
                        pass
        finally:
            self._waking.release()

    def stop(self) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        for child in self._children:
            if child.poll() is None:
                child.kill()
        for child in self._children:
            child.wait()
            if child.stderr is not None:
                child.stderr.close()
        self._children = []
        with self._waking:
            for fd in self._wake_fds:
                os.close(fd)
            self._wake_fds = []
            if self._flags is not None:
                self._flags.close()
                self._flags = None

    def __enter__(self) -> "IdlePoller":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_CHILD = """
import ctypes, os, signal, sys, time
parent, cpu = int(sys.argv[1]), int(sys.argv[2])
ctypes.CDLL(None, use_errno=True).prctl(%d, int(signal.SIGKILL), 0, 0, 0)
if os.getppid() != parent:
    sys.exit(0)
ctypes.CDLL(None).prctl(15, b"clearway-idle", 0, 0, 0)
os.sched_setaffinity(0, {cpu})
adaptive = len(sys.argv) > 3
if adaptive:
    import mmap
    window, index, parked = float(sys.argv[3]), int(sys.argv[5]), int(sys.argv[6])
    flags = mmap.mmap(int(sys.argv[4]), 0)
    os.close(int(sys.argv[4]))
    clock, read, gap = time.perf_counter, os.read, %r
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
sys.stderr.write("ready\\n")
sys.stderr.flush()
if not adaptive:
    while True:
        pass
last = idle_since = clock()
while True:
    now = clock()
    if now - last > gap:
        idle_since = now
    last = now
    if now - idle_since > window:
        flags[index] = 1
        read(parked, 4096)
        last = idle_since = clock()
""" % (_PR_SET_PDEATHSIG, _BUSY_GAP_S)
"""The child (stdlib only, started with ``-I -S``: no site packages, a few MB): die with
the parent (argv[1]) — checked after arming the signal, in case the parent is already
gone — name itself ``clearway-idle`` (PR_SET_NAME), pin to the CPU argv[2], finish its
set-up, drop to SCHED_IDLE (last: at idle priority on a busy CPU the set-up could take
long), say ``ready`` on stderr, spin. Adaptive (argv[3:] = window in seconds, the
shared flags' fd, this spinner's index in them, the read end of its pipe): spin until
the CPU has been idle for the window (no gap longer than the busy gap between two clock
readings), then set its flag and block on the pipe until ``IdlePoller.wake`` writes."""
