"""Do the loaded symbols describe the running code? ``Session.check_symbols()``.

Breakpoints that never trip and stops at ``?? ()`` have two usual causes: the kernel runs
at another address than it was linked for (Linux KASLR slides the kernel image by a
multiple of CONFIG_PHYSICAL_ALIGN, 2 MiB on Debian, within the 1 GiB kernel image range
0xffffffff80000000-0xffffffffc0000000, Documentation/x86/x86_64/mm.rst and
arch/x86/boot/compressed/kaslr.c; a loader that runs a kernel at a constant offset from its
link address, such as 0xffffffff00000000), or the symbols come from another build.

The check reads bytes that do not change at run time (``linux_banner``, FreeBSD's and
NetBSD's ``version``; else the start of ``.text``) where the symbols put them; where they
differ it looks for them at every KASLR slide and the usual constant offsets, and matches
the code at ``$pc`` against the symbol file's code. One batch read in GDB's own Python
covers all candidates, so the check takes well under a second.
"""

from __future__ import annotations

import dataclasses
import json
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Error
from .elffile import ElfImage, open_elf
from .mi import quote

if TYPE_CHECKING:
    from .session import Session

__all__ = ["KERNEL_IMAGE_RANGE", "SLIDE_ALIGN", "SymbolCheck", "check", "format_offset",
           "search"]

#: Where x86-64 kernels link and where Linux may slide them to (Documentation/x86/x86_64/mm.rst).
KERNEL_IMAGE_RANGE = (0xFFFF_FFFF_8000_0000, 0xFFFF_FFFF_C000_0000)
#: The alignment of a KASLR slide (CONFIG_PHYSICAL_ALIGN, 2 MiB on Debian's kernels).
SLIDE_ALIGN = 0x20_0000
#: Link-to-run offsets of kernels linked high and run low (or the reverse), e.g. a 64-bit
#: kernel entered at the 32-bit truncation of its link address.
CONSTANT_OFFSETS = (-0xFFFF_FFFF_0000_0000, 0xFFFF_FFFF_0000_0000,
                    -0xFFFF_FFFF_8000_0000, 0xFFFF_FFFF_8000_0000)
#: Strings that are the same in the file and in memory, first found wins.
ANCHOR_SYMBOLS = ("linux_banner", "version")
_ANCHOR_BYTES = 64
_MASK = (1 << 64) - 1
_PC_WINDOW = 64
_NEEDLE = 16

Reader = Callable[[Sequence[tuple[int, int]]], list[bytes | None]]


def format_offset(offset: int | None) -> str:
    """``+0x2a000000``; a negative offset also as GDB adds it (modulo 2^64)."""
    if offset is None:
        return "unknown"
    if offset < 0:
        return f"-{-offset:#x} (≡ {offset & _MASK:#x} mod 2^64)"
    return f"+{offset:#x}"


@dataclasses.dataclass(frozen=True)
class _Anchor:
    name: str
    address: int  # link address
    data: bytes


@dataclasses.dataclass(frozen=True)
class Found:
    """What :func:`search` concluded (pure data, no session)."""

    offset: int | None
    loaded_matches: bool | None
    evidence: tuple[str, ...]
    pc_in_code: bool | None
    pc_link: int | None  # the pc as a link address at ``offset``


@dataclasses.dataclass(eq=False)
class SymbolCheck:
    """Whether the symbols describe the running code, and the offset that makes them.

    ``offset`` is run address minus link address (what ``symbol-file -o`` takes), None when
    not found; ``loaded_offset`` the one the session's symbols use now. ``ok`` is True when
    they agree, False when they do not, None when the guest's memory cannot tell (the
    kernel is not in memory yet). ``kind``: "none" (runs at its link address), "kaslr",
    "constant", or "unknown".
    """

    ok: bool | None
    kind: str
    offset: int | None
    loaded_offset: int
    evidence: list[str]
    symbols: Path | None = None
    pc: int | None = None
    pc_in_symbols: bool | None = None
    function: str | None = None  # where the pc is, by the symbols at ``offset``
    _session: weakref.ref[Session] | None = dataclasses.field(default=None, repr=False)

    @property
    def fix(self) -> str:
        """What makes the symbols match: the call, the GDB command, or the boot option."""
        if self.ok or self.offset is None:
            return ""
        path = self.symbols or "<symbols>"
        option = f"-o {self.offset & _MASK:#x} " if self.offset else ""
        out = (f"check.apply(); or in GDB `symbol-file {option}{path}`; or "
               f"Session.connect(..., symbol_offset={self.offset:#x})")
        if self.kind == "kaslr":
            out += "; or boot the kernel with `nokaslr` (Guest(..., nokaslr=True))"
        return out

    def apply(self, *, timeout: float = 120.0) -> None:
        """Reload the symbols at ``offset`` in the session that made this check."""
        if self.offset is None:
            raise Error(f"the symbol offset was not found, so there is nothing to apply:\n{self}")
        session = self._session() if self._session is not None else None
        if session is None or session.closed:
            raise Error("the session this check came from is closed; connect again with "
                        f"Session.connect(..., symbol_offset={self.offset:#x})")
        if self.symbols is None:
            raise Error("no symbol file is loaded")
        session.load_symbols(self.symbols, offset=self.offset, timeout=timeout)
        self.ok = True
        self.loaded_offset = self.offset

    def __str__(self) -> str:
        if self.ok:
            head = "symbols match the running code"
        elif self.ok is None and self.offset is None:
            head = "cannot tell whether the symbols match the running code"
        else:
            head = "the symbols do not match the running code"
        if self.offset is not None and not self.ok:
            head += f": it runs at {format_offset(self.offset)} from its link address"
            if self.kind == "kaslr":
                head += " (a KASLR slide: booted without nokaslr)"
        if self.offset is not None and self.loaded_offset != self.offset:
            head += f"; the symbols are loaded at {format_offset(self.loaded_offset)}"
        lines = [head, *(f"  - {e}" for e in self.evidence)]
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<SymbolCheck ok={self.ok} kind={self.kind!r} offset="
                f"{format_offset(self.offset)} loaded={format_offset(self.loaded_offset)}>")

    def _repr_html_(self) -> str:
        color = {True: "#2a7a2a", False: "#b00020", None: "#8a6d00"}[self.ok]
        items = "".join(f"<li>{escape(e)}</li>" for e in self.evidence)
        fix = f"<div><b>fix:</b> <code>{escape(self.fix)}</code></div>" if self.fix else ""
        head = escape(str(self).splitlines()[0])
        return (f'<div><b style="color:{color}">{head}</b>'
                f'<ul style="margin:2px 0">{items}</ul>{fix}</div>')


def _anchors(elf: ElfImage) -> list[_Anchor]:
    out = []
    for name in ANCHOR_SYMBOLS:
        found = elf.symbol(name) if elf.has_symbols else None
        if found is None:
            continue
        data = elf.read(found[0], min(found[1] or _ANCHOR_BYTES, _ANCHOR_BYTES))
        if data and any(data):
            out.append(_Anchor(name, found[0], data))
            break
    text = next((s for s in elf.sections if s.name == ".text" and not s.nobits), None)
    if not out and text is not None:
        data = elf.read(text.address, 32)
        if data:
            out.append(_Anchor(".text", text.address, data))
    return out


def _candidates(anchor: _Anchor, loaded: int) -> list[int]:
    """Offsets to try besides ``loaded``: every KASLR slide, then the constant ones."""
    low, high = KERNEL_IMAGE_RANGE
    offsets = []
    if low <= anchor.address < high:
        first = -((anchor.address - low) // SLIDE_ALIGN)
        last = (high - anchor.address - len(anchor.data)) // SLIDE_ALIGN
        offsets += [k * SLIDE_ALIGN for k in range(first, last + 1)]
    offsets += CONSTANT_OFFSETS
    out: list[int] = []
    for offset in offsets:
        at = anchor.address + offset
        if offset != loaded and offset not in out and 0 <= at and at + len(anchor.data) <= _MASK:
            out.append(offset)
    return out


def _kind(offset: int | None, anchor: _Anchor | None) -> str:
    if offset is None:
        return "unknown"
    if offset == 0:
        return "none"
    low, high = KERNEL_IMAGE_RANGE
    if (anchor is not None and offset % SLIDE_ALIGN == 0 and abs(offset) < high - low
            and low <= anchor.address + offset < high):
        return "kaslr"
    return "constant"


def _code_votes(elf: ElfImage, pc: int, code: bytes) -> Counter[int]:
    """Offsets that put the bytes at ``pc`` onto the symbol file's code, by vote."""
    votes: Counter[int] = Counter()
    for at in range(0, len(code) - _NEEDLE + 1, _NEEDLE):
        hits = elf.find_code(code[at : at + _NEEDLE])
        if len(hits) == 1:
            votes[_signed(pc + at - hits[0])] += 1
    return votes


def search(elf: ElfImage, loaded: int, pc: int | None, read: Reader) -> Found:
    """Compare ``elf`` with memory read by ``read`` and find the link-to-run offset.

    ``read`` takes (address, length) ranges and answers bytes or None for each; ``loaded``
    is the offset the symbols are loaded at; ``pc`` the stopped CPU's program counter.
    """
    evidence: list[str] = []
    anchors = _anchors(elf)
    anchor = anchors[0] if anchors else None
    ranges: list[tuple[int, int]] = []
    if pc is not None:  # up to the end of pc's page: the next one may not be mapped
        ranges.append((pc, max(_NEEDLE, min(_PC_WINDOW, 0x1000 - (pc & 0xFFF)))))
    offsets = [loaded, *_candidates(anchor, loaded)] if anchor is not None else []
    ranges += [((anchor.address + o) & _MASK, len(anchor.data)) for o in offsets] if anchor else []
    got = read(ranges) if ranges else []
    code = got.pop(0) if pc is not None else None
    matches = [o for o, data in zip(offsets, got, strict=True) if anchor and data == anchor.data]
    loaded_matches: bool | None = None
    if anchor is None:
        evidence.append(f"{elf.path.name} has no linux_banner, version or .text to compare")
    else:
        at = (anchor.address + loaded) & _MASK
        seen = got[0] if got else None
        if seen == anchor.data:
            loaded_matches = True
            evidence.append(f"{anchor.name} at {at:#x} holds the bytes the symbol file has")
        else:
            loaded_matches = False if seen is not None else None
            what = "is not readable" if seen is None else f"holds {_show(seen)}"
            evidence.append(f"{anchor.name} at {at:#x} (where the symbols put it) {what}; "
                            f"the symbol file has {_show(anchor.data)}")
    offset: int | None = loaded if loaded_matches else None
    offset = None if offset is None else _signed(offset)
    if offset is None and matches:
        if pc is not None and len(matches) > 1:
            matches.sort(key=lambda o: elf.in_code((pc - o) & _MASK) is None)
        offset = matches[0]
        assert anchor is not None
        found_at = (anchor.address + offset) & _MASK
        evidence.append(f"{anchor.name} found at {found_at:#x}: the code runs "
                        f"at {format_offset(offset)} from its link address"
                        + (f" ({_kind(offset, anchor)} offset)" if offset else ""))
        if len(matches) > 1:
            evidence.append("also found at offsets "
                            + ", ".join(format_offset(o) for o in matches[1:]))
    if offset is None and pc is not None and code:
        votes = _code_votes(elf, pc, code)
        if votes:
            guess, count = votes.most_common(1)[0]
            confirmed = False
            if anchor is not None:
                at = (anchor.address + guess) & _MASK
                confirmed = read([(at, len(anchor.data))])[0] == anchor.data
            if confirmed:
                offset = guess
                assert anchor is not None
                evidence.append(f"the code at pc {pc:#x} is the symbol file's code at "
                                f"{(pc - guess) & _MASK:#x}: offset {format_offset(guess)}, "
                                f"confirmed by {anchor.name}")
            elif count >= 2:
                offset = guess
                evidence.append(f"the code at pc {pc:#x} matches the symbol file's code at "
                                f"{(pc - guess) & _MASK:#x} ({count} windows agree): offset "
                                f"{format_offset(guess)}; not confirmed by a string")
        elif loaded_matches is False and elf.in_code((pc - loaded) & _MASK) is not None:
            evidence.append(f"the code at pc {pc:#x} is nowhere in {elf.path.name}'s code: "
                            "the running kernel may be another build")
    pc_in_code = None
    if pc is not None:
        pc_in_code = elf.in_code((pc - loaded) & _MASK) is not None
        if not pc_in_code:
            evidence.append(f"pc {pc:#x} lies outside every code section of "
                            f"{elf.path.name} at {format_offset(loaded)}")
    pc_link = (pc - offset) & _MASK if pc is not None and offset is not None else None
    return Found(offset, loaded_matches, tuple(evidence), pc_in_code, pc_link)


def _show(data: bytes) -> str:
    text = data.split(b"\0", 1)[0][:40]
    if len(text) >= 8 and all(32 <= b < 127 for b in text):
        return repr(text.decode())
    return data[:16].hex(" ")


def _reader(session: Session, timeout: float | None) -> Reader:
    def read(ranges: Sequence[tuple[int, int]]) -> list[bytes | None]:
        request = quote(json.dumps([list(r) for r in ranges]))
        answer = json.loads(session.mi(f"-mvnb-read-many {request}",
                                       timeout=timeout).payload["json"])
        return [bytes.fromhex(a) if isinstance(a, str) else None for a in answer]
    return read


def _signed(value: int) -> int:
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


def check(session: Session, *, timeout: float | None = 30.0) -> SymbolCheck:
    """Compare the session's symbol file with the stopped guest (see the module docstring)."""
    loaded = _signed(session.symbol_offset)
    ref = weakref.ref(session)
    if session.symbols is None:
        return SymbolCheck(None, "unknown", None, loaded, ["no symbol file is loaded"],
                           _session=ref)
    if session.running:
        raise Error("the target is running; call interrupt() before check_symbols()")
    elf = open_elf(session.symbols)
    try:
        pc: int | None = int(session.eval_many(["(unsigned long)$pc"], timeout=timeout)[0])
    except Error:
        pc = None
    found = search(elf, loaded, pc, _reader(session, timeout))
    if found.loaded_matches:
        ok: bool | None = True
    elif found.offset is not None or found.loaded_matches is False:
        ok = False
    else:
        ok = None
    anchors = _anchors(elf)
    function = None
    if found.pc_link is not None:
        function = _symbol_at(session, found.pc_link + loaded, timeout)
    evidence = list(found.evidence)
    if function and found.offset is not None and found.offset != loaded:
        evidence.append(f"at {format_offset(found.offset)} the pc is in {function}")
    return SymbolCheck(ok, _kind(found.offset, anchors[0] if anchors else None), found.offset,
                       loaded, evidence, session.symbols, pc, found.pc_in_code, function,
                       _session=ref)


def _symbol_at(session: Session, address: int, timeout: float | None) -> str | None:
    """GDB's ``info symbol``: "start_kernel + 12" (None when no symbol holds it)."""
    try:
        text = session.console(f"info symbol {address & _MASK:#x}", timeout=timeout).strip()
    except Error:
        return None
    if not text or text.startswith("No symbol"):
        return None
    return text.split(" in section ")[0]


def timeout_note(session: Session) -> str:
    """For a run that timed out with breakpoints set: the symbol problem, if any, in a few
    lines ("" when the symbols match or the check cannot run)."""
    if session.symbols is None or not session.breakpoints():
        return ""
    try:
        result = check(session, timeout=10)
    except Error:
        return ""
    if result.ok is False or (result.ok is None and result.pc_in_symbols is False):
        return f"\nThe breakpoints may never trip: {result}"
    return ""
