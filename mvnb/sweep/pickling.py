"""Experiments as bytes that a worker process can load, wherever they were defined.

cloudpickle pickles a function of ``__main__`` (a notebook, a script) by value, but a
function of an imported module by reference: the worker then imports that module, which
it cannot when it is a test module or a notebook's helper file on the driver's machine
only. So the modules of the experiment that are neither mvnb's own nor installed (in the
interpreter's library or site-packages directories) are registered with
``cloudpickle.register_pickle_by_value`` for the pickling, and the bytes carry their code.
"""

from __future__ import annotations

import functools
import sys
import sysconfig
from pathlib import Path
from typing import Any

import cloudpickle

__all__ = ["by_value", "dumps"]

_INSTALLED = tuple(Path(p).resolve() for p in {
    sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})


def _modules(experiment: Any) -> list[str]:
    """The modules the experiment's code comes from (a partial's function, an instance's
    class, a bound method's object)."""
    seen = []
    todo = [experiment]
    while todo:
        item = todo.pop()
        if isinstance(item, functools.partial):
            todo.append(item.func)
            continue
        if hasattr(item, "__self__") and not isinstance(item.__self__, type(sys)):
            todo.append(type(item.__self__))
        if not isinstance(item, type) and not hasattr(item, "__code__"):
            item = type(item)  # a callable instance: its class holds the code
        name = getattr(item, "__module__", None)
        if name and name not in seen:
            seen.append(name)
    return seen


def by_value(name: str) -> bool:
    """Must module ``name`` travel by value (a worker may not be able to import it)?"""
    if name == "__main__" or name.split(".")[0] == "mvnb":
        return False  # __main__ goes by value anyway; mvnb is on every worker
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if module is None or file is None:
        return False  # built in, or not a module we can register
    path = Path(file).resolve()
    return not any(path.is_relative_to(root) for root in _INSTALLED)


def dumps(experiment: Any) -> bytes:
    """``experiment`` pickled so that a worker process loads it intact."""
    registered = []
    try:
        for name in _modules(experiment):
            if by_value(name) and name not in cloudpickle.list_registry_pickle_by_value():
                cloudpickle.register_pickle_by_value(sys.modules[name])
                registered.append(name)
        return cloudpickle.dumps(experiment)
    finally:
        for name in registered:
            cloudpickle.unregister_pickle_by_value(sys.modules[name])
