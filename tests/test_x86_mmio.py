"""The pure parts of reading the LAPIC by the CPU: load decoding, word plans, the page walk.

The live side (the guest's CPU doing the reads, on both QEMUs) is in test_probes_live.py and
test_x2apic_live.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mvnb.x86.lapic_cpu import word_plan
from mvnb.x86.mmio import REGISTERS, decode_load
from mvnb.x86.paging import _Walk


def test_linux_native_apic_mem_read():
    """6.1's ``mov -0xa03000(%rdi),%eax``: the displacement is APIC_BASE, rdi the offset."""
    load = decode_load(bytes.fromhex("8b8700d05fff"), 0xFFFF_FFFF_8106_AB12)
    assert load is not None
    assert (load.base, load.disp, load.dest) == ("rdi", -0xA03000, "rax")
    assert load.code == bytes.fromhex("8b8700d05fff") and load.address == 0xFFFF_FFFF_8106_AB12
    apic_base = 0xFFFF_FFFF_FF5F_D000
    assert load.inputs(apic_base + 0x30) == {"rdi": 0x30}
    assert str(load) == "mov -0xa03000(%rdi),%eax at 0xffffffff8106ab12"


@pytest.mark.parametrize(("hexcode", "base", "disp", "dest"), [
    ("8b07", "rdi", 0, "rax"),            # mov (%rdi),%eax
    ("8b4608", "rsi", 8, "rax"),          # mov 0x8(%rsi),%eax
    ("8b4df0", "rbp", -16, "rcx"),        # mov -0x10(%rbp),%ecx
    ("418b4508", "r13", 8, "rax"),        # REX.B: mov 0x8(%r13),%eax
    ("448b07", "rdi", 0, "r8"),           # REX.R: mov (%rdi),%r8d
    ("458b3c24ff", None, None, None),     # SIB (rm = 100): not taken
])
def test_loads_with_rex_and_displacements(hexcode, base, disp, dest):
    load = decode_load(bytes.fromhex(hexcode) + b"\x90" * 4)
    if base is None:
        assert load is None
    else:
        assert load is not None and (load.base, load.disp, load.dest) == (base, disp, dest)
        assert bytes.fromhex(hexcode).startswith(load.code)


@pytest.mark.parametrize("hexcode", [
    "488b07",        # REX.W: a 64-bit load (QEMU's LAPIC takes 32-bit accesses)
    "8b0510000000",  # RIP-relative
    "8b0424",        # SIB
    "8bc7",          # register to register
    "8b27",          # into esp
    "8b8f00",        # displacement cut short
    "8907",          # a store
    "",
])
def test_what_is_not_a_usable_load(hexcode):
    assert decode_load(bytes.fromhex(hexcode)) is None


@given(st.binary(min_size=0, max_size=8), st.integers(0, (1 << 64) - 1))
def test_any_decoded_load_reads_the_address_asked_for(code, target):
    load = decode_load(code)
    if load is not None:
        assert load.base in REGISTERS and load.dest in REGISTERS and "rsp" not in (
            load.base, load.dest)
        assert code.startswith(load.code) and 2 <= len(load.code) <= 7
        value = load.inputs(target)[load.base]
        assert (value + load.disp) % (1 << 64) == target


def test_word_plans_follow_the_sdm_map():
    """Offsets (Vol. 3A Table 10-1) in xAPIC mode, MSRs (Table 10-6) in x2APIC mode."""
    assert word_plan("LAPIC_VERSION", x2apic=False) == [0x30]
    assert word_plan("LAPIC_VERSION", x2apic=True) == [0x803]
    assert word_plan("TMR", x2apic=False) == [0x180 + 0x10 * i for i in range(8)]
    assert word_plan("TMR", x2apic=True) == list(range(0x818, 0x820))
    assert word_plan("ICR", x2apic=False) == [0x300, 0x310]
    assert word_plan("ICR", x2apic=True) == [0x830]  # one 64-bit MSR; there is no 0x831
    assert word_plan("LDR", x2apic=True) == [0x80D]
    for name in ("APR", "DFR", "RRD"):
        with pytest.raises(KeyError, match="x2APIC mode has no"):
            word_plan(name, x2apic=True)
    assert word_plan("DFR", x2apic=False) == [0xE0]
    with pytest.raises(KeyError, match="write-only"):
        word_plan("EOI", x2apic=False)


class _Memory:
    """Synthetic page tables: physical address → 4 KiB table (entries by index)."""

    def __init__(self, tables: dict[int, dict[int, int]]) -> None:
        self.tables = tables
        self.reads: list[int] = []

    def read(self, address: int, size: int) -> bytes:
        assert size == 4096
        self.reads.append(address)
        entries = self.tables.get(address, {})
        return b"".join(entries.get(i, 0).to_bytes(8, "little") for i in range(512))


PRESENT = 0x3  # present, writable
LARGE = 0x80


def test_walk_finds_linux_fixmap_in_4_level_tables():
    """0xffffffffff5fd000 → 0xfee00000: PML4[511] PDPT[511] PD[506] PT[509] (SDM Vol. 3A 4.5)."""
    memory = _Memory({
        0x1000: {511: 0x2000 | PRESENT, 273: 0x9000 | PRESENT},
        0x2000: {511: 0x3000 | PRESENT},
        0x3000: {506: 0x4000 | PRESENT},
        0x4000: {509: 0xFEE00000 | PRESENT | 0x10, 508: 0xFEC00000 | PRESENT},
    })
    assert _Walk(memory, 0xFEE00000, 4, 16).table(0x1000, 0, 0) == 0xFFFF_FFFF_FF5F_D000
    assert _Walk(memory, 0xFEC00000, 4, 16).table(0x1000, 0, 0) == 0xFFFF_FFFF_FF5F_C000
    assert 0x9000 not in memory.reads  # top down: the hit came before the direct map
    assert _Walk(memory, 0xFED00000, 4, 16).table(0x1000, 0, 0) is None


def test_walk_large_pages_lower_half_and_five_levels():
    memory = _Memory({
        0x1000: {0: 0x5000 | PRESENT, 300: 0x2000 | PRESENT},
        0x2000: {3: 0x3000 | PRESENT},
        0x3000: {2: 0xFEE00000 & ~0x1FFFFF | PRESENT | LARGE | 0x1000},  # 2 MiB page, PAT bit
        0x5000: {0: 0xFEE00000 | PRESENT},  # the lower half is never searched
    })
    found = _Walk(memory, 0xFEE00000, 4, 16).table(0x1000, 0, 0)
    assert found == (0xFFFF_0000_0000_0000 | 300 << 39 | 3 << 30 | 2 << 21)
    five = _Memory({0x1000: {511: 0x2000 | PRESENT}, 0x2000: {510: 0x3000 | PRESENT},
                    0x3000: {4: 0xC0000000 | PRESENT | LARGE}})  # a 1 GiB page
    assert _Walk(five, 0xFEE00000, 5, 16).table(0x1000, 0, 0) == (
        0xFF00_0000_0000_0000 | 511 << 48 | 510 << 39 | 4 << 30 | 0x3EE00000)


def test_walk_gives_up_after_max_tables():
    memory = _Memory({0x1000: {i: 0x2000 | PRESENT for i in range(256, 512)}})
    with pytest.raises(Exception, match="pass the virtual address yourself"):
        _Walk(memory, 0xFEE00000, 4, 8).table(0x1000, 0, 0)
