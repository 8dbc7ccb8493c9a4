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
setting on low-latency trading hosts; it needs no privileges, and it burns the idle
time of every CPU it covers (power, and a hyper-threaded sibling's share of its core),
so it is opt-in: ``clearway node --idle-poll``. Not under a CPU quota: a ``SCHED_IDLE``
task still counts against a cgroup's CPU limit (``cpu.max``, a container's CPU limit), so
with a limit below the number of CPUs the spinners would use up the quota and get the
node's own threads throttled.

The children die with the thread that started them (``PR_SET_PDEATHSIG``: start them from
the main thread, or one that lives as long as they should), even if the process is killed
with SIGKILL; ``stop()`` ends them earlier.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1
_START_TIMEOUT_S = 30.0


class IdlePoller:
    """One ``SCHED_IDLE`` spinning child process per CPU in ``cpus`` (default: every CPU
    this process may run on). Use as a context manager, or ``start()`` / ``stop()``.

    Raises OSError from ``start`` if a child cannot be started (e.g. no ``SCHED_IDLE``,
    which is Linux-only)."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        self._children: list[subprocess.Popen] = []

    @property
    def running(self) -> bool:
        return any(child.poll() is None for child in self._children)

    def start(self) -> "IdlePoller":
        if self._children:
            return self
        if not hasattr(os, "SCHED_IDLE"):
            raise OSError("idle polling needs Linux's SCHED_IDLE")
        parent = str(os.getpid())
        try:
            for cpu in self.cpus:
                child = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _CHILD, parent, str(cpu)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )
                self._children.append(child)
                if not select.select([child.stderr], [], [], _START_TIMEOUT_S)[0]:
                    raise OSError(f"idle poller for CPU {cpu} did not start within {_START_TIMEOUT_S} s")
                line = child.stderr.readline()  # the child reports once it is set up
                if line.strip() != b"ready":
                    rest = line + child.stderr.read() if child.poll() is not None else line
                    raise OSError(f"idle poller for CPU {cpu} did not start: {rest.decode(errors='replace')[-500:]}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for child in self._children:
            if child.poll() is None:
                child.kill()
        for child in self._children:
            child.wait()
            if child.stderr is not None:
                child.stderr.close()
        self._children = []

    def __enter__(self) -> "IdlePoller":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_CHILD = """
import ctypes, os, signal, sys
parent, cpu = int(sys.argv[1]), int(sys.argv[2])
ctypes.CDLL(None, use_errno=True).prctl(%d, int(signal.SIGKILL), 0, 0, 0)
if os.getppid() != parent:
    sys.exit(0)
ctypes.CDLL(None).prctl(15, b"clearway-idle", 0, 0, 0)
os.sched_setaffinity(0, {cpu})
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
sys.stderr.write("ready\\n")
sys.stderr.flush()
while True:
    pass
""" % _PR_SET_PDEATHSIG
"""The child (stdlib only, started with ``-I -S``: no site packages, a few MB): die with
the parent (argv[1]) — checked after arming the signal, in case the parent is already
gone — name itself ``clearway-idle`` (PR_SET_NAME), pin to the CPU argv[2], drop to SCHED_IDLE, say ``ready`` on stderr, spin."""
