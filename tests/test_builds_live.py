"""QEMU builds for real: a fetch from bookworm-backports, and the Debian guest on QEMU 10.

The fetch downloads about 14 MB and runs only with ``MVNB_TEST_FETCH=1`` (into a temporary
cache, so the normal suite never downloads again); the boot runs on the QEMU 10 build of
``--qemu`` (tests/conftest.py), skipped, saying so, when there is none.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

import mvnb
from mvnb.errors import QemuError
from mvnb.vm import builds

pytestmark = pytest.mark.live

X2APIC = 1 << 21  # CPUID.01H:ECX[21], SDM Vol. 2A, CPUID, Table 3-10


def _apt_state() -> dict[str, tuple[int, int]]:
    """mtime and size of every file apt keeps for the system (lists, caches)."""
    out = {}
    for root in (Path("/var/lib/apt"), Path("/var/cache/apt")):
        for path in root.rglob("*"):
            try:
                if path.is_file():
                    st = path.stat()
                    out[str(path)] = (st.st_mtime_ns, st.st_size)
            except OSError:
                continue
    return out


@pytest.mark.skipif(os.environ.get("MVNB_TEST_FETCH") != "1",
                    reason="downloads QEMU (14 MB); set MVNB_TEST_FETCH=1 to run it")
def test_fetch_into_an_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    before = _apt_state()
    build = builds.fetch_qemu(progress=False)
    assert build.origin == "cache" and build.version_tuple >= (10, 0)
    assert build.binary.is_relative_to(tmp_path / "mvnb" / "qemu")
    assert build.package.startswith("Debian ") and "bpo12" in build.package
    assert build.firmware is not None and build.module_dir is not None
    for image in ("bios-256k.bin", "bios-microvm.bin", "linuxboot_dma.bin", "pvh.bin"):
        assert (build.firmware / image).resolve().is_file(), image
    assert builds.qemu_builds()[0] == build
    assert builds.resolve_qemu(".".join(map(str, build.version_tuple[:2]))) == build
    assert [p.name for p in (tmp_path / "mvnb" / "qemu").iterdir()] == [build.version]
    stamp = build.binary.parents[2] / builds.STAMP
    made = stamp.stat().st_mtime_ns
    assert builds.fetch_qemu(progress=False) == build  # already there: nothing replaced
    assert stamp.stat().st_mtime_ns == made
    assert _apt_state() == before  # the system's apt lists and caches are untouched
    with pytest.raises(QemuError, match=r"has no qemu-system-x86 1\.0"):
        builds.fetch_qemu("1.0", progress=False)


@pytest.mark.qemu("10", reason="QEMU 7.2's TCG has no x2APIC")
def test_cpuid_shows_x2apic_on_qemu10(guest, qemu_build):
    qemu10 = qemu_build
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vm, s, _ = mvnb.boot_to(guest, "lapic_cal_handler", qemu=qemu10,
                                extra_args=["-cpu", "max"])
    with vm:
        assert vm.qemu_build == qemu10 and vm.argv_used[1:3] == ["-L", str(qemu10.firmware)]
        leaf1 = s.x86.cpuid(1)
        assert leaf1.ecx & X2APIC and "x2apic" in leaf1.flags()
        assert vm.stderr_path.read_text() == ""  # no module or firmware warnings on start
        # microvm has no interrupt remapping: Linux keeps the APIC in xAPIC mode.
        vm.wait_serial(r"x2apic: IRQ remapping doesn't support X2APIC mode", timeout=5)
        assert s.x86.msr("IA32_APIC_BASE")["extd"].enum == "xapic"
