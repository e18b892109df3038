"""The symbol check's search, against the real vmlinux placed in a model of guest memory
(the symbol file's bytes at link address + offset, nothing elsewhere): no QEMU here; the
live tests in test_symbols_live.py run it against real guests."""

from __future__ import annotations

import pytest

from mvnb.gdb.elffile import open_elf
from mvnb.gdb.symbols import SymbolCheck, _kind, format_offset, search

MASK = (1 << 64) - 1


class Memory:
    """Guest memory holding the kernel ``elf`` at ``offset`` from its link address."""

    def __init__(self, elf, offset: int) -> None:
        self.elf, self.offset = elf, offset
        self.reads = 0

    def __call__(self, ranges):
        self.reads += 1
        return [self.elf.read((address - self.offset) & MASK, size) for address, size in ranges]


@pytest.fixture(scope="module")
def elf(guest):
    return open_elf(guest.symbols)


def pc_in(elf, function: str, offset: int) -> int:
    address, _ = elf.symbol(function)
    return (address + offset + 4) & MASK


def test_matching_symbols(elf):
    found = search(elf, 0, pc_in(elf, "lapic_cal_handler", 0), Memory(elf, 0))
    assert found.loaded_matches and found.offset == 0 and found.pc_in_code
    assert "holds the bytes the symbol file has" in found.evidence[0]


@pytest.mark.parametrize("slide", [0x2A000000, 0x3C000000])
def test_kaslr_slide(elf, slide):
    memory = Memory(elf, slide)
    found = search(elf, 0, pc_in(elf, "default_idle", slide), memory)
    assert found.offset == slide and found.loaded_matches is None  # unslid: unreadable
    assert found.pc_in_code is False and found.pc_link == pc_in(elf, "default_idle", 0)
    assert memory.reads == 1  # every candidate in one batch
    assert any("lies outside every code section" in e for e in found.evidence)


@pytest.mark.parametrize("slide", [0x1000000, -0x800000])
def test_small_slide_overlapping_the_image(elf, slide):
    """Slid by less than the image's size, the unslid addresses hold other bytes of the
    same kernel, and the pc may fall inside another function: the banner still tells."""
    found = search(elf, 0, pc_in(elf, "default_idle", slide), Memory(elf, slide))
    assert found.offset == slide and not found.loaded_matches


def test_kaslr_kind_needs_the_kernel_image_range(elf):
    from mvnb.gdb.symbols import _anchors

    (anchor,) = _anchors(elf)
    assert _kind(0x2A000000, anchor) == "kaslr"
    assert _kind(0x123000, anchor) == "constant"
    assert _kind(-0xFFFFFFFF00000000, anchor) == "constant"
    assert _kind(0, anchor) == "none"


def test_constant_offset_low_run_address(elf):
    """A kernel linked at 0xffffffff81000000 running at 0x81000000."""
    offset = -0xFFFFFFFF00000000
    found = search(elf, 0, pc_in(elf, "start_kernel", offset), Memory(elf, offset))
    assert found.offset == offset
    assert format_offset(offset) == "-0xffffffff00000000 (≡ 0x100000000 mod 2^64)"


def test_unusual_offset_found_from_the_code_at_pc(elf):
    """Not a slide, not a known constant: the code at pc tells, the banner confirms."""
    offset = 0x123000
    memory = Memory(elf, offset)
    found = search(elf, 0, pc_in(elf, "lapic_cal_handler", offset), memory)
    assert found.offset == offset
    assert any("confirmed by linux_banner" in e for e in found.evidence)
    assert memory.reads == 2


def test_symbols_loaded_at_a_wrong_offset(elf):
    found = search(elf, 0x200000, pc_in(elf, "lapic_cal_handler", 0), Memory(elf, 0))
    assert found.loaded_matches is False and found.offset == 0
    assert "where the symbols put it" in found.evidence[0] and "holds" in found.evidence[0]


def test_nothing_in_memory_yet(elf):
    """Stopped at reset: no kernel in memory, pc in the BIOS."""
    found = search(elf, 0, 0xFFF0, lambda ranges: [None] * len(ranges))
    assert found.offset is None and found.loaded_matches is None and found.pc_in_code is False


def test_another_build_in_memory(elf, generic):
    found = search(elf, 0, pc_in(open_elf(generic.symbols), "lapic_cal_handler", 0),
                   lambda ranges: [open_elf(generic.symbols).read(a, n) for a, n in ranges])
    assert found.offset is None and found.loaded_matches is False


def test_check_text_and_fix(elf):
    check = SymbolCheck(False, "kaslr", 0x2A000000, 0, ["linux_banner found elsewhere"],
                        elf.path, 0xFFFFFFFFAB000000, False, "default_idle + 4")
    text = str(check)
    assert "+0x2a000000" in text and "KASLR slide" in text and "nokaslr" in text
    assert f"symbol-file -o 0x2a000000 {elf.path}" in check.fix
    assert "symbol_offset=0x2a000000" in check.fix
    assert "KASLR" in check._repr_html_() or "kaslr" in check._repr_html_().lower()
    with pytest.raises(Exception, match="session"):
        check.apply()
    assert SymbolCheck(True, "none", 0, 0, [], elf.path).fix == ""
