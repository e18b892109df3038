"""Firmware signature search: the MP spec and ACPI both put their root pointer on a 16-byte
boundary in a few fixed areas of low physical memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..errors import FaultError

if TYPE_CHECKING:
    from ..gdb import Session


def paragraphs(session: Session, areas: Iterable[tuple[int, int]], signature: bytes,
               length: int, *, timeout: float | None) -> Iterator[tuple[int, bytes]]:
    """``(address, bytes)`` of every 16-byte-aligned place in ``areas`` (start, size) that
    begins with ``signature``, ``length`` bytes from there; unreadable areas are skipped."""
    for start, size in areas:
        try:
            data = session.read_physical(start, size, timeout=timeout)
        except FaultError:
            continue
        at = data.find(signature)
        while at >= 0:
            if at % 16 == 0:
                yield start + at, data[at : at + length]
            at = data.find(signature, at + 1)
