"""parse_ioapics against QEMU 7.2's and QEMU 10.0's ``info pic`` text.

``qemu_ioapic_block`` re-implements ``ioapic_print_redtbl`` (hw/intc/ioapic_common.c, the
same in both versions) so hypothesis can check the parser on any I/O APIC state; the
recorded texts in tests/data come from the live Debian guest (tests/data/README.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mvnb.regs.ioapic import IoapicState, parse_ioapics

DATA = Path(__file__).parent / "data"
DELM = ["fixed", "lowest", "SMI", "...", "NMI", "INIT", "...", "extINT"]
RESET = 1 << 16  # every entry after reset: masked


def _pins(name: str, bits: int) -> str:
    listed = "".join(f"{i:<2} " for i in range(24) if bits >> i & 1)
    return f"{name:<10} {listed or '(none)'}\n"


def qemu_ioapic_block(version: int, ident: int, sel: int, entries: list[int], irr: int) -> str:
    """QEMU's text for one I/O APIC (it calls every one of them ioapic0)."""
    out = [f"ioapic0: ver=0x{version:x} id=0x{ident:02x} sel=0x{sel:02x}"]
    out.append(f" (redir[{((sel - 0x10) >> 1) & 0xFFFFFFFF}])\n" if sel else "\n")  # int, %u
    remote = 0
    for pin, e in enumerate(entries):
        logical = e >> 11 & 1
        out.append(
            "  pin %-2u 0x%016x dest=%x vec=%-3u %s %-5s %-6s %-6s %s\n"  # noqa: UP031 (QEMU's)
            % (pin, e, (e >> 56) & (0xFF if logical else 0xF), e & 0xFF,
               "active-lo" if e >> 13 & 1 else "active-hi", "level" if e >> 15 & 1 else "edge",
               "masked" if e >> 16 & 1 else "", DELM[e >> 8 & 7],
               "logical" if logical else "physical"))
        if e >> 15 & 1 and e >> 14 & 1:
            remote |= 1 << pin
    return "".join(out) + _pins("  IRR", irr) + _pins("  Remote IRR", remote)


ENTRY = st.one_of(st.just(RESET), st.integers(0, (1 << 64) - 1))
BLOCK = st.tuples(st.sampled_from([0x11, 0x20]), st.integers(0, 0xFF), st.integers(0, 0x3F),
                  st.lists(ENTRY, min_size=24, max_size=24), st.integers(0, (1 << 24) - 1))


@given(st.lists(BLOCK, min_size=1, max_size=3))
def test_parser_reads_back_any_state_qemu_prints(blocks):
    pic = "pic1: irr=00 imr=ff isr=00 hprio=0 irq_base=00 rr_sel=0 elcr=00 fnm=0\n"
    text = pic.join(qemu_ioapic_block(*b) for b in blocks)
    states = parse_ioapics(text)
    assert [s.index for s in states] == list(range(len(blocks)))
    for state, (version, ident, sel, entries, irr) in zip(states, blocks, strict=True):
        assert (state.version, state.id, state.ioregsel) == (version, ident, sel)
        assert state.entries == tuple(entries) and state.irr == irr
        remote = sum(1 << p for p, e in enumerate(entries) if e >> 15 & 1 and e >> 14 & 1)
        assert state.remote_irr == remote
        assert set(state.unmasked) == {p for p, e in enumerate(entries) if not e >> 16 & 1}


@pytest.mark.parametrize("version", ["qemu72", "qemu10"])
def test_microvm_has_two_io_apics_on_both_versions(version):
    states = parse_ioapics((DATA / f"info_pic_{version}_microvm.txt").read_text())
    assert len(states) == 2  # 0xFEC00000 (GSI 0-23) and 0xFEC10000 (GSI 24-47)
    for state in states:
        assert isinstance(state, IoapicState)
        assert state.version == 0x20 and state.id == 0 and len(state.entries) == 24
        assert state.unmasked == {} and state.irr == 0 and state.remote_irr == 0
    mtree = (DATA / f"info_mtree_{version}_microvm.txt").read_text()
    assert "00000000fec10000-00000000fec10fff (prio 0, i/o): ioapic" in mtree


@pytest.mark.parametrize("version", ["qemu72", "qemu10"])
def test_pc_routes_the_timer_through_pin_2(version):
    (state,) = parse_ioapics((DATA / f"info_pic_{version}_pc.txt").read_text())
    assert state.ioregsel == 0x14  # the high word of pin 2's entry was written last
    entry = state.unmasked[2]
    assert entry == 0x0100000000000830  # vector 0x30 ("..TIMER: vector=0x30"), logical, dest 1
    assert set(state.unmasked) == {2}


def test_q35_with_interrupt_remapping_writes_remappable_entries():
    (state,) = parse_ioapics((DATA / "info_pic_qemu10_q35.txt").read_text())
    entry = state.unmasked[2]
    assert entry >> 48 & 1  # format bit: remappable (VT-d spec 5.1.5.1)
    assert entry >> 49 == 1 and entry & 0xFF == 2  # interrupt index 1; vector field = pin


def test_errors_say_what_to_pass():
    with pytest.raises(ValueError, match="'info pic'"):
        parse_ioapics("unknown command: 'info ioapic'\r\n")
    with pytest.raises(ValueError, match="no I/O APIC"):
        parse_ioapics("pic0: irr=01 imr=ff isr=00 hprio=0 irq_base=30 rr_sel=0 elcr=00 fnm=0\n")
    text = (DATA / "info_pic_qemu72_pc.txt").read_text()
    cut = "".join(text.splitlines(keepends=True)[:10])
    with pytest.raises(ValueError, match="incomplete"):
        parse_ioapics(cut)


def test_crlf_text_parses_the_same():
    text = (DATA / "info_pic_qemu10_microvm.txt").read_text()
    assert parse_ioapics(text.replace("\n", "\r\n")) == parse_ioapics(text)


@pytest.mark.parametrize("name", ["info_pic_qemu72_pc.txt", "info_pic_qemu10_microvm.txt",
                                  "info_pic_qemu10_q35.txt"])
def test_the_generator_above_prints_what_qemu_printed(name):
    text = (DATA / name).read_text()
    for state in parse_ioapics(text):
        block = qemu_ioapic_block(state.version, state.id, state.ioregsel, list(state.entries),
                                  state.irr)
        assert block in text
