"""Structures in guest memory: MP tables, ACPI tables and the MADT, I/O APIC state.

``find_mp(s)`` and ``MPTable.read(s, address)`` (Intel MP spec 1.4); ``find_rsdp(s)``,
``acpi_tables(s)`` (ACPI 6.5; ``acpi_tables(s)["APIC"]`` is a ``MADT``); ``read_ioapics(s)``
(QEMU's monitor, entries decoded as ``IOAPIC_REDTBL``). Physical memory is read through
``Session.read_physical``. Decoders never raise on malformed bytes: each object has
``findings`` (expected against found, with the bytes around), ``to_frame()`` and a
``_repr_html_`` that renders in a notebook and in a published post.
"""

from __future__ import annotations

from .acpi import RSDP, AcpiTable, AcpiTables, RootTable, SDTHeader, acpi_tables, find_rsdp
from .acpi import decode as decode_acpi
from .acpi import read_table as read_acpi_table
from .findings import Finding
from .ioapic import IoApicState, parse_info_pic, read_ioapics
from .madt import MADT
from .mp import MPFloatingPointer, MPHeader, MPTable, find_mp

__all__ = [
    "MADT",
    "RSDP",
    "AcpiTable",
    "AcpiTables",
    "Finding",
    "IoApicState",
    "MPFloatingPointer",
    "MPHeader",
    "MPTable",
    "RootTable",
    "SDTHeader",
    "acpi_tables",
    "decode_acpi",
    "find_mp",
    "find_rsdp",
    "parse_info_pic",
    "read_acpi_table",
    "read_ioapics",
]
