"""Bounded little-endian reads and a description of whatever bytes lie somewhere.

Every read returns None past the end of the data instead of raising, so decoders can turn
a short table into a finding.
"""

from __future__ import annotations

__all__ = ["ACPI_SIGNATURES", "describe", "text", "uint"]

#: ACPI table signatures (ACPI 6.5, Tables 5.5 and 5.6) and what they are.
ACPI_SIGNATURES = {
    "APIC": "Multiple APIC Description Table (MADT)",
    "BERT": "Boot Error Record Table",
    "BGRT": "Boot Graphics Resource Table",
    "DMAR": "DMA Remapping Table",
    "DSDT": "Differentiated System Description Table",
    "ECDT": "Embedded Controller Boot Resources Table",
    "FACP": "Fixed ACPI Description Table (FADT)",
    "FACS": "Firmware ACPI Control Structure",
    "HEST": "Hardware Error Source Table",
    "HPET": "High Precision Event Timer Table",
    "MCFG": "PCI Express Memory-mapped Configuration Table",
    "RSDT": "Root System Description Table",
    "SLIT": "System Locality Information Table",
    "SRAT": "System Resource Affinity Table",
    "SSDT": "Secondary System Description Table",
    "WAET": "Windows ACPI Emulated Devices Table",
    "XSDT": "Extended System Description Table",
}


def uint(data: bytes, offset: int, size: int) -> int | None:
    """The little-endian unsigned integer at ``offset``, or None if the data ends first."""
    if offset < 0 or offset + size > len(data):
        return None
    return int.from_bytes(data[offset : offset + size], "little")


def text(data: bytes, offset: int, size: int) -> str | None:
    """An ASCII field (NULs and padding kept as they are; other bytes escaped), or None."""
    if offset < 0 or offset + size > len(data):
        return None
    raw = data[offset : offset + size]
    return "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in raw)


def describe(data: bytes) -> str:
    """What ``data`` (bytes found somewhere in memory) looks like: an ACPI table, an MP
    structure, zeros, or just bytes."""
    if not data:
        return "nothing that was read"
    head = data[:8]
    sig = data[:4].decode("latin-1")
    if head == b"RSD PTR ":
        return "an ACPI RSDP ('RSD PTR ')"
    if sig in ACPI_SIGNATURES:
        length = uint(data, 4, 4)
        revision = uint(data, 8, 1)
        oem = text(data, 10, 6)
        extra = ", ".join(x for x in (
            f"length {length}" if length is not None else "",
            f"revision {revision}" if revision is not None else "",
            f"OEM {oem!r}" if oem is not None else "") if x)
        return (f"an ACPI table {sig!r} ({ACPI_SIGNATURES[sig]}"
                + (f"; {extra}" if extra else "") + ")")
    if sig == "_MP_":
        return "an MP floating pointer ('_MP_')"
    if sig == "PCMP":
        return "an MP configuration table ('PCMP')"
    if not any(data):
        return f"{len(data)} zero bytes"
    return "bytes of no known structure"
