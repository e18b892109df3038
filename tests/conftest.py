"""Shared fixtures: the real Debian guest under real QEMU, driven by real GDB.

Live fixtures are module-scoped (one booted guest per test module where state allows);
a test that breaks its guest boots its own with ``boot``. At the end of the run, any
``qemu-system`` or ``gdb`` process this run started and left behind fails the run.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import mvnb


def _children() -> list[tuple[int, str]]:
    """Processes whose parent is this pytest process and that run qemu or gdb."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = next((line.split()[1] for line in status.splitlines()
                     if line.startswith("PPid:")), "")
        state = next((line.split()[1] for line in status.splitlines()
                      if line.startswith("State:")), "")
        if ppid == me and state != "Z" and ("qemu-system" in cmdline or "gdb" in cmdline):
            found.append((int(entry.name), cmdline.strip()))
    return found


def live_children() -> list[tuple[int, str]]:
    return _children()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = _children()
    if left:
        print("\nprocesses left behind by the tests:")
        for pid, cmdline in left:
            print(f"  {pid} {cmdline[:160]}")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def guest() -> mvnb.Guest:
    return mvnb.guests.debian_cloud(progress=False)


@pytest.fixture(scope="session")
def generic() -> mvnb.Guest:
    """Debian's generic kernel (flavour "amd64") with its own -dbg symbols, from the cache.

    Its -dbg package is an 860 MB download, fetched once by setup (`mvnb guest fetch
    --flavour amd64`); the tests that need it skip when it is not cached.
    """
    from mvnb.vm.debian import cached

    guest = cached("amd64")
    if guest is None:
        pytest.skip("Debian's generic kernel is not in the cache: run `mvnb guest fetch "
                    "--flavour amd64` (a 930 MB download) to run this test")
    return guest


@pytest.fixture(scope="session")
def boot(guest: mvnb.Guest):
    """``boot(location, **qemu_args) -> (vm, session, stop)``; VMs close at the end."""
    started: list[mvnb.Qemu] = []

    def _boot(location: str = "lapic_cal_handler", **qemu_args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            vm, session, stop = mvnb.boot_to(guest, location, **qemu_args)
        started.append(vm)
        return vm, session, stop

    yield _boot
    for vm in started:
        vm.close()


@pytest.fixture(scope="module")
def calibrating(guest: mvnb.Guest) -> Iterator[tuple[mvnb.Qemu, mvnb.Session]]:
    """One guest per module, stopped at the first ``lapic_cal_handler`` hit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vm, session, _ = mvnb.boot_to(guest, "lapic_cal_handler")
    with vm:
        yield vm, session
