"""Accessors: architecture helpers that hang off a session (``s.x86``).

Modelled on ``pandas.api.extensions.register_dataframe_accessor``: the session knows
nothing of x86; ``mvnb.x86`` registers an accessor class under the name ``x86``, and
``s.x86`` builds one per session on first use, holding the session weakly (so the accessor
never keeps a session alive). An accessor uses only the session's public methods.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from .session import Session

__all__ = ["register_session_accessor"]

T = TypeVar("T")


class _CachedAccessor:
    """A descriptor: ``Session.<name>`` builds ``cls(session)`` once per session."""

    def __init__(self, name: str, cls: type) -> None:
        self._name = name
        self._cls = cls

    def __get__(self, session: Session | None, owner: type) -> Any:
        if session is None:
            return self._cls
        accessor = self._cls(weakref.proxy(session))
        session.__dict__[self._name] = accessor  # later lookups skip the descriptor
        return accessor


def register_session_accessor(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: ``s.<name>`` becomes an instance of the class, built with the session.

    >>> @register_session_accessor("arm64")
    ... class Arm64:
    ...     def __init__(self, session): self._s = session
    """

    def decorate(cls: type[T]) -> type[T]:
        if hasattr(Session, name) and not isinstance(Session.__dict__.get(name),
                                                     _CachedAccessor):
            raise AttributeError(f"Session already has an attribute {name!r}")
        setattr(Session, name, _CachedAccessor(name, cls))
        return cls

    return decorate
