"""Values read from the guest: print like C, behave like Python (after drgn's ``Object``).

A ``Value`` is a snapshot taken when it was evaluated: its members and elements were read
in the same GDB call (two levels deep by default; deeper members are read on first access
through the session, and so reflect the guest at that moment). Evaluate again for a new
reading. Metadata ends in an underscore (``type_``, ``address_``, ``size_``) so it never
hides a struct member called ``type`` or ``address``.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Value"]

_INTEGRAL = {"ptr", "enum", "flags", "int", "bool", "char"}


class Value:
    """One C value: ``int(v)``, ``hex(v)``, ``v == 0``, ``v.member``, ``v["member"]``, ``v[3]``."""

    __slots__ = ("_data", "_expr", "_session")

    def __init__(self, data: dict[str, Any], expr: str, session: Session | None = None) -> None:
        self._data = data
        self._expr = expr
        self._session = session

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
        """The expression this value was read from."""
        return self._expr

    @property
    def error_(self) -> str | None:
        """GDB's message when part of the value could not be read, else None."""
        return self._data.get("error")

    # -- Python behaviour --------------------------------------------------------------

    def __int__(self) -> int:
        if "int" not in self._data:
            raise TypeError(f"{self._expr} is a {self.type_} ({self.code_}), not an integer")
        return self._data["int"]

    __index__ = __int__

    def __float__(self) -> float:
        if "float" in self._data:
            return self._data["float"]
        return float(int(self))

    def __bool__(self) -> bool:
        if self.code_ in _INTEGRAL or self.code_ == "float":
            return bool(self._data.get("int", self._data.get("float")))
        return True

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Value):
            return self._data == other._data
        if isinstance(other, (int, float)):
            scalar = self._data.get("int", self._data.get("float"))
            return scalar is not None and scalar == other
        return NotImplemented

    def __lt__(self, other: Any) -> bool:
        return self._scalar() < _scalar_of(other)

    def __le__(self, other: Any) -> bool:
        return self._scalar() <= _scalar_of(other)

    def __gt__(self, other: Any) -> bool:
        return self._scalar() > _scalar_of(other)

    def __ge__(self, other: Any) -> bool:
        return self._scalar() >= _scalar_of(other)

    def __hash__(self) -> int:
        return hash((self.type_, self._data.get("int"), self._data.get("str")))

    def _scalar(self) -> float:
        if "int" in self._data:
            return self._data["int"]
        if "float" in self._data:
            return self._data["float"]
        raise TypeError(f"{self._expr} is a {self.type_}, which does not compare")

    # -- members and elements ----------------------------------------------------------

    def members_(self) -> list[str]:
        """Member names of a struct or union, in declaration order."""
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

    def __getitem__(self, key: str | int) -> Value:
        if isinstance(key, str):
            if self.code_ not in ("struct", "union", "ptr"):
                raise KeyError(key)
            for name, data in self._data.get("fields", []):
                if name == key:
                    return Value(data, f"({self._expr}).{key}", self._session)
            for name, data in self._data.get("fields", []):  # members of anonymous unions
                if name is None and data.get("fields"):
                    inner = Value(data, self._expr, self._session)
                    if key in inner.members_():
                        return inner[key]
            if self.code_ == "ptr" or ("fields" not in self._data and self._session):
                return self._read(f"({self._expr}){'->' if self.code_ == 'ptr' else '.'}{key}")
            raise KeyError(key)
        index = int(key)
        items = self._data.get("items")
        if items is not None and 0 <= index < len(items):
            return Value(items[index], f"({self._expr})[{index}]", self._session)
        if self.code_ in ("array", "ptr") and self._session is not None:
            return self._read(f"({self._expr})[{index}]")
        raise IndexError(f"{self._expr}[{index}] is out of range or not indexable")

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
        """``*v`` for a pointer, read now."""
        if self.code_ != "ptr":
            raise TypeError(f"{self._expr} is a {self.type_}, not a pointer")
        return self._read(f"*({self._expr})")

    def _read(self, expr: str) -> Value:
        if self._session is None:
            raise LookupError(f"{expr}: this value has no session to read more from")
        return self._session.eval(expr)

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
