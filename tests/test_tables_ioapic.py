"""QEMU's ``info pic`` parsed into I/O APIC redirection entries (recorded text)."""

from __future__ import annotations

from pathlib import Path

from mvnb.regs import IOAPIC_REDTBL, decode
from mvnb.tables import parse_info_pic

PC = (Path(__file__).parent / "data" / "info_pic_pc_qemu72.txt").read_text()
MASKED = "  pin {n:<2} 0x0000000000010000 dest=0 vec=0   active-hi edge  masked fixed  physical"
#: QEMU 7.2 microvm has two I/O APICs, both printed as "ioapic0" (ioapic_print_info).
MICROVM = "\n".join(
    ["ioapic0: ver=0x20 id=0x00 sel=0x01 (redir[4294967288])",
     *(MASKED.format(n=n) for n in range(24)), "  IRR      (none)", "  Remote IRR (none)",
     "pic1: irr=00 imr=ff isr=00 hprio=0 irq_base=00 rr_sel=0 elcr=00 fnm=0",
     "ioapic0: ver=0x20 id=0x00 sel=0x01 (redir[4294967288])",
     *(MASKED.format(n=n) for n in range(24)), "  IRR      3 5", "  Remote IRR (none)"])


def test_pc_after_boot():
    (io,) = parse_info_pic(PC)
    assert (io.id, io.version, len(io.pins)) == (0, 0x20, 24)
    assert sorted(io.unmasked) == [1, 2, 4, 8, 9, 12]
    timer = io.pins[2]
    assert timer.spec is IOAPIC_REDTBL and int(timer) == 0x0100000000000830
    assert timer["vector"] == 0x30 and timer["destination_mode"] == "logical"
    assert timer["destination"] == 1 and timer["trigger_mode"] == "edge"
    assert io.pins[9]["trigger_mode"] == "level"  # ACPI's SCI
    assert io.pins[0]["mask"] == "masked"
    frame = io.to_frame()
    assert len(frame) == 24 and frame.loc[2, "vector"] == 0x30
    assert frame.loc[0, "mask"] == "masked" and frame.loc[9, "trigger_mode"] == "level"
    assert "I/O APIC #0" in io._repr_html_() and "1→0x23" in str(io)


def test_two_ioapics_and_irr():
    first, second = parse_info_pic(MICROVM)
    assert (first.index, second.index) == (0, 1)
    assert first.irr == () and second.irr == (3, 5)
    assert not first.unmasked and len(second.pins) == 24


def test_qemu_text_agrees_with_the_spec():
    """QEMU prints each field beside the raw entry; the decoded fields say the same."""
    (io,) = parse_info_pic(PC)
    for line in PC.splitlines():
        if not line.strip().startswith("pin"):
            continue
        words = line.split()
        rv = io.pins[int(words[1])]
        assert rv == decode("IOAPIC_REDTBL", int(words[2], 16))
        assert f"dest={int(rv['destination'])}" in line and f"vec={int(rv['vector'])}" in line
        assert ("masked" in words) == (rv["mask"] == "masked")
        assert words[-1] == str(rv["destination_mode"].enum)
        assert ("level" in words) == (rv["trigger_mode"] == "level")
