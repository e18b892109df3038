"""Values read from the guest: print like C, behave like Python (after drgn's ``Object``).

A ``Value`` is bound to the object it was read from, not to the text of its expression.
Its members and elements down to ``depth`` levels were read in the same GDB call, when it
was evaluated; anything read later (a deeper member, an element past the first 256, a
pointer's target) is read at the same object, ``*(T *)ADDRESS``, and shows that object's
memory as it is then (drgn's model). A pointer follows the address it held when it was
read. A value with no address (a register, a computed value) has nothing to come back to:
it is read completely up front, and what was not read says it cannot be expanded.

A member GDB cannot give (``<optimized out>``, ``<unavailable>``, unreadable memory) is a
value with ``available_`` False that prints as GDB prints it, not an error for the whole
``eval``. Scalars compare and hash as their number; structs, unions and arrays as
``(type_, address_)``. Metadata ends in an underscore (``type_``, ``address_``, ``size_``)
so it never hides a struct member called ``type`` or ``address``.
"""

from __future__ import annotations

import html
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import GdbError, SessionClosed, ValueUnavailable

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Value"]

_INTEGRAL = {"ptr", "enum", "flags", "int", "bool", "char"}
_AGGREGATE = {"struct", "union", "array"}
_ROOT = object()


class Value:
    """One C value: ``int(v)``, ``hex(v)``, ``v == 0``, ``v.member``, ``v["member"]``, ``v[3]``."""

    __slots__ = ("_data", "_expr", "_ref", "_session")

    def __init__(self, data: dict[str, Any], expr: str,
                 session: Session | weakref.ref[Session] | None = None,
                 *, ref: Any = _ROOT) -> None:
        self._data = data
        self._expr = expr
        if session is None or isinstance(session, weakref.ref):
            self._session = session
        else:  # held weakly: a value in a notebook variable must not keep a VM alive
            self._session = weakref.ref(session)
        # An expression naming this very object (``(*(T *)ADDR).member``), or None.
        self._ref: str | None = data.get("ref") if ref is _ROOT else ref

    # -- metadata (trailing underscore: never a member name) ---------------------------

    @property
    def type_(self) -> str:
        """The C type as GDB names it (``unsigned long``, ``struct task_struct *``)."""
        return self._data["type"]

    @property
    def code_(self) -> str:
        """The kind of type: int, ptr, struct, union, array, enum, float, bool, char, ..."""
        return self._data["code"]

    @property
    def address_(self) -> int | None:
        """Where the value lives in guest memory, or None (a register, a computed value)."""
        return self._data.get("address")

    @property
    def size_(self) -> int:
        return self._data["size"]

    @property
    def expr_(self) -> str:
        """The expression this value was read from (for display; the value is bound to
        the object, not to this text)."""
        return self._expr

    @property
    def available_(self) -> bool:
        """False when GDB cannot give this value here: optimized out, unavailable, or in
        memory that cannot be read (``error_`` says which)."""
        return self._data.get("available", True)

    @property
    def error_(self) -> str | None:
        """GDB's message when this value (or part of it) could not be read, else None."""
        return self._data.get("error")

    # -- Python behaviour --------------------------------------------------------------

    def _number(self) -> int | float | None:
        if "int" in self._data:
            return self._data["int"]
        return self._data.get("float")

    def _unavailable(self) -> ValueUnavailable:
        return ValueUnavailable(f"{self._expr} is {self}: GDB cannot read it where the target "
                                "stopped" + (f" ({self.error_})" if self.error_ else ""))

    def __int__(self) -> int:
        if not self.available_:
            raise self._unavailable()
        if "int" not in self._data:
            raise TypeError(f"{self._expr} is a {self.type_} ({self.code_}), not an integer")
        return self._data["int"]

    __index__ = __int__

    def __float__(self) -> float:
        if "float" in self._data:
            return self._data["float"]
        return float(int(self))

    def __bool__(self) -> bool:
        if not self.available_:
            raise self._unavailable()
        if self.code_ in _INTEGRAL or self.code_ == "float":
            return bool(self._number())
        return True

    def __eq__(self, other: object) -> bool:
        if not self.available_:
            return self is other
        number = self._number()
        if number is not None:
            if isinstance(other, Value):
                return other.available_ and number == other._number()
            if isinstance(other, (int, float)):
                return number == other
            return NotImplemented
        if isinstance(other, Value):
            if self.address_ is None or other.address_ is None:
                return self is other
            return (self.type_, self.address_) == (other.type_, other.address_)
        return NotImplemented

    def __hash__(self) -> int:
        number = self._number() if self.available_ else None
        if number is not None:
            return hash(number)
        if self.available_ and self.address_ is not None:
            return hash((self.type_, self.address_))
        return object.__hash__(self)

    def __lt__(self, other: Any) -> bool:
        return self._scalar() < _scalar_of(other)

    def __le__(self, other: Any) -> bool:
        return self._scalar() <= _scalar_of(other)

    def __gt__(self, other: Any) -> bool:
        return self._scalar() > _scalar_of(other)

    def __ge__(self, other: Any) -> bool:
        return self._scalar() >= _scalar_of(other)

    def _scalar(self) -> float:
        if not self.available_:
            raise self._unavailable()
        number = self._number()
        if number is None:
            raise TypeError(f"{self._expr} is a {self.type_}, which does not compare")
        return number

    # -- members and elements ----------------------------------------------------------

    def members_(self) -> list[str]:
        """Member names of a struct or union, in declaration order (as far as read)."""
        return [name for name, _ in self._data.get("fields", []) if name is not None]

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self.members_()]

    def __getattr__(self, name: str) -> Value:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"{self.type_} has no member {name!r}"
                + (f"; members: {', '.join(self.members_())}" if self.members_() else "")
            ) from None

    def _child(self, data: dict[str, Any], expr: str, access: str) -> Value:
        if self._ref is not None:
            ref: str | None = f"{self._ref}{access}"
        elif (data.get("address") is not None and data.get("code") in ("struct", "union")
              and "{" not in data["type"]):  # a named struct in memory names itself
            ref = f"(*({data['type']} *) {data['address']:#x})"
        else:
            ref = None
        return Value(data, expr, self._session, ref=ref)

    def __getitem__(self, key: str | int) -> Value:
        if isinstance(key, str):
            return self._member(key)
        index = int(key)
        if self.code_ == "ptr":
            return self._read(f"(({self._pointer_type()}) {int(self):#x})[{index}]",
                              f"{self._expr}[{index}]")
        if self.code_ != "array":
            raise TypeError(f"{self._expr} is a {self.type_}, not an array or a pointer")
        length = self._data.get("length")
        if length is not None and not 0 <= index < length:
            raise IndexError(f"{self._expr}[{index}] is out of range (length {length})")
        items = self._data.get("items")
        if items is not None and 0 <= index < len(items):
            return self._child(items[index], f"{self._expr}[{index}]", f"[{index}]")
        return self._read(f"{self._bound()}[{index}]", f"{self._expr}[{index}]")

    def _member(self, key: str) -> Value:
        if self.code_ == "ptr":
            return self._read(f"(*({self._pointer_type()}) {int(self):#x}).{key}",
                              f"{self._expr}->{key}", key)
        if self.code_ not in ("struct", "union"):
            raise KeyError(key)
        fields = self._data.get("fields")
        if fields is None:  # members were not read (depth): read this one now, here
            return self._read(f"{self._bound()}.{key}", f"{self._expr}.{key}", key)
        for name, data in fields:
            if name == key:
                return self._child(data, f"{self._expr}.{key}", f".{key}")
        unread = False
        for name, data in fields:  # members of anonymous structs and unions
            if name is None and data.get("code") in ("struct", "union"):
                if "fields" not in data:
                    unread = True
                    continue
                try:
                    return Value(data, self._expr, self._session, ref=self._ref)[key]
                except KeyError:
                    continue
        if unread:  # C reaches an anonymous member's members through the parent
            return self._read(f"{self._bound()}.{key}", f"{self._expr}.{key}", key)
        raise KeyError(key)

    def __len__(self) -> int:
        if self.code_ == "array":
            return self._data.get("length", len(self._data.get("items", [])))
        if self.code_ in ("struct", "union"):
            return len(self.members_())
        raise TypeError(f"{self.type_} has no length")

    def __iter__(self) -> Iterator[Value]:
        if self.code_ == "array":
            return (self[i] for i in range(len(self)))
        raise TypeError(f"{self.type_} is not iterable")

    def deref(self) -> Value:
        """``*v`` for a pointer: the object at the address it held when it was read."""
        if self.code_ != "ptr":
            raise TypeError(f"{self._expr} is a {self.type_}, not a pointer")
        return self._read(f"(*({self._pointer_type()}) {int(self):#x})", f"*{self._expr}")

    def _pointer_type(self) -> str:
        if "{" in self.type_:
            raise TypeError(f"{self._expr} points to an unnamed type ({self.type_}), which "
                            "cannot be named to read through it later; evaluate an "
                            "expression that reads through it instead")
        return self.type_

    def _bound(self) -> str:
        """The expression naming this object, for members read later."""
        if self._ref is None:
            why = ("has no address (a register or a computed value)" if self.address_ is None
                   else f"has a type that cannot be named ({self.type_}) in a value with "
                   "no expression to reach it")
            raise LookupError(
                f"{self._expr} cannot be expanded: it {why}, so it was read up front and "
                "there is no object to read more of; evaluate an expression for the member "
                "instead"
            )
        return self._ref

    def _read(self, ref: str, display: str, member: str | None = None) -> Value:
        session = self._session() if self._session is not None else None
        if session is None:
            raise SessionClosed(f"{display}: the session {self._expr} was read from is gone; "
                                "evaluate it again in an open session")
        try:
            value = session.eval(ref)
        except GdbError as error:
            if member is not None and "There is no member named" in error.message:
                raise KeyError(member) from None
            raise
        return Value(value._data, display, self._session, ref=value._ref)

    # -- display -----------------------------------------------------------------------

    def __str__(self) -> str:
        if "str" in self._data:
            return self._data["str"]
        if self.code_ == "int" and "int" in self._data:  # GDB prints a plain int as decimal
            return str(self._data["int"])
        if "fields" in self._data:
            inner = ", ".join(
                f"{name} = {Value(d, '', None)}" if name else str(Value(d, "", None))
                for name, d in self._data["fields"]
            )
            return f"{{{inner}}}"
        if "items" in self._data:
            return "{" + ", ".join(str(Value(d, "", None)) for d in self._data["items"]) + "}"
        return f"<{self.type_}>"

    def __repr__(self) -> str:
        text = str(self)
        if len(text) > 120:
            text = text[:117] + "..."
        return f"Value({self._expr!r}, type_={self.type_!r}, {text})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(f"({self.type_}) {self}")

    def _repr_html_(self) -> str:
        head = (f"<code>{html.escape(self._expr)}</code> "
                f"<span style='color:#666'>({html.escape(self.type_)})</span>")
        if self.address_ is not None:
            head += f" <span style='color:#666'>@ {self.address_:#x}</span>"
        if "fields" not in self._data:
            return f"<div>{head} = <code>{html.escape(str(self))}</code></div>"
        rows = []
        for name, data in self._data["fields"]:
            member = Value(data, name or "", None)
            text = str(member)
            if len(text) > 80:
                text = text[:77] + "..."
            rows.append(
                f"<tr><td style='text-align:left'><code>{html.escape(name or '(anonymous)')}"
                f"</code></td><td style='text-align:left;color:#666'>{html.escape(member.type_)}"
                f"</td><td style='text-align:left'><code>{html.escape(text)}</code></td></tr>"
            )
        return (f"<div>{head}<table><thead><tr><th>member</th><th>type</th><th>value</th>"
                f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _scalar_of(other: Any) -> float:
    return other._scalar() if isinstance(other, Value) else other
