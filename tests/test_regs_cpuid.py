"""CpuidResult: mapping and attributes, vendor signatures, decoding through the CPUID specs."""

from __future__ import annotations

import pytest

from mvnb.regs import CpuidResult


def _sig(text: bytes) -> tuple[int, int, int]:
    text = text.ljust(12, b"\0")
    return tuple(int.from_bytes(text[i : i + 4], "little") for i in (0, 4, 8))


def test_tcg_hypervisor_leaf_vendor():
    ebx, ecx, edx = _sig(b"TCGTCGTCGTCG")
    r = CpuidResult(0x40000000, 0, 0x40000001, ebx, ecx, edx)
    assert r.vendor == "TCGTCGTCGTCG"
    assert r["eax"] == r.eax == 0x40000001
    assert r.decode()["eax"]["max_leaf"] == 0x40000001


def test_kvm_signature_loses_trailing_nuls():
    ebx, ecx, edx = _sig(b"KVMKVMKVM")
    assert CpuidResult(0x40000000, 0, 0x40000001, ebx, ecx, edx).vendor == "KVMKVMKVM"


def test_leaf_0_vendor_is_ebx_edx_ecx():
    ebx, edx, ecx = _sig(b"GenuineIntel")
    assert CpuidResult(0, 0, 0x16, ebx, ecx, edx).vendor == "GenuineIntel"


def test_leaf_1_decodes_apic_and_x2apic_bits_seen_on_qemu_tcg():
    r = CpuidResult(1, 0, 0x00060FB1, 0x00000800, 0x80002001, 0x078BFBFD)
    assert dict(r) == {"eax": 0x00060FB1, "ebx": 0x800, "ecx": 0x80002001, "edx": 0x078BFBFD}
    decoded = r.decode()
    assert set(decoded) == {"ecx", "edx"}
    assert decoded["edx"]["apic"] == 1 and decoded["edx"]["tsc"] == 1
    assert decoded["ecx"]["x2apic"] == 0 and decoded["ecx"]["tsc_deadline"] == 0
    assert decoded["ecx"]["hypervisor"] == 1
    assert "apic" in r.flags() and "x2apic" not in r.flags()
    with pytest.raises(ValueError, match="no vendor"):
        _ = r.vendor


def test_timing_leaf_and_errors():
    r = CpuidResult(0x40000010, 0, 2_000_000, 1_000_000, 0, 0)
    assert r.decode()["eax"]["tsc_khz"] == 2_000_000
    assert r.decode()["ebx"]["apic_khz"] == 1_000_000
    with pytest.raises(KeyError):
        r["rax"]
    with pytest.raises(ValueError, match="32-bit"):
        CpuidResult(1, 0, 1 << 32, 0, 0, 0)
    assert "0x40000010" in repr(r)
    assert "CPUID" in r._repr_html_()
