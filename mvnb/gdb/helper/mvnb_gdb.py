"""mvnb's helper inside GDB: MI commands that do bulk work in GDB's own Python.

Loaded into GDB once per session (``source``); each command answers with one MI result
record whose ``json`` field holds the answer, so a thousand reads cost one round trip.
GDB's MI costs about 0.2 ms per command; inside GDB a read costs about 20 µs
(shared/facts/gdb-mi-qemu.md). Needs GDB >= 13 (``gdb.MICommand``).

This file runs inside GDB, not in the notebook's Python: it imports only ``gdb`` and the
standard library.
"""

import json
import re
import time

import gdb  # type: ignore[import-not-found]

_CODES = {
    gdb.TYPE_CODE_PTR: "ptr",
    gdb.TYPE_CODE_ARRAY: "array",
    gdb.TYPE_CODE_STRUCT: "struct",
    gdb.TYPE_CODE_UNION: "union",
    gdb.TYPE_CODE_ENUM: "enum",
    gdb.TYPE_CODE_FLAGS: "flags",
    gdb.TYPE_CODE_FUNC: "func",
    gdb.TYPE_CODE_INT: "int",
    gdb.TYPE_CODE_FLT: "float",
    gdb.TYPE_CODE_VOID: "void",
    gdb.TYPE_CODE_BOOL: "bool",
    gdb.TYPE_CODE_CHAR: "char",
    gdb.TYPE_CODE_RANGE: "int",
}
_INTEGRAL = {"ptr", "enum", "flags", "int", "bool", "char"}
ARRAY_LIMIT = 256
FULL_DEPTH = 8  # how deep a value with no address (nothing to come back to) is read
_AGGREGATE_CODES = {gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION, gdb.TYPE_CODE_ARRAY}


def serialize(value, depth):
    """A value as plain data: type, code, size, address, int/float, str, members.

    A value GDB cannot give (optimized out, unavailable, unreadable memory) gets
    ``"available": false`` and GDB's own rendering in ``str`` instead of failing the
    whole answer; its siblings are still read.
    """
    vtype = value.type
    stripped = vtype.strip_typedefs()
    code = _CODES.get(stripped.code, "other")
    out = {"type": str(vtype), "code": code, "size": stripped.sizeof}
    try:
        address = value.address
        out["address"] = int(address) if address is not None else None
    except gdb.error:
        out["address"] = None
    try:
        if code in ("struct", "union"):
            if depth > 0:
                out["fields"] = [
                    [field.name, serialize(value[field], depth - 1)]
                    for field in stripped.fields()
                    if not field.artificial
                ]
        elif code == "array":
            low, high = stripped.range()
            out["length"] = high - low + 1
            if depth > 0:
                last = min(high, low + ARRAY_LIMIT - 1)
                out["items"] = [serialize(value[i], depth - 1) for i in range(low, last + 1)]
        elif code in _INTEGRAL:
            out["int"] = int(value)
        elif code == "float":
            out["float"] = float(value)
        if code not in ("struct", "union", "array") or depth > 0:
            out["str"] = value.format_string()
            if out["str"] == "<optimized out>":  # an aggregate optimized out as a whole
                out["available"] = False
    except gdb.error as error:  # gdb.MemoryError included
        out.pop("int", None)
        out.pop("float", None)
        out["available"] = False
        out["error"] = str(error)
        out["str"] = unavailable_text(value, error)
    return out


def unavailable_text(value, error):
    """What GDB prints in place of a value it cannot give."""
    try:
        if value.is_optimized_out:
            return "<optimized out>"
    except gdb.error:
        pass
    message = str(error)
    if "optimized out" in message:
        return "<optimized out>"
    if "not available" in message or "unavailable" in message:
        return "<unavailable>"
    return f"<error: {message}>"


def object_ref(value):
    """An expression naming the object ``value`` is (``*(T *)ADDR``), or None when it has
    no address or its type cannot be named (an anonymous struct)."""
    try:
        address = value.address
    except gdb.error:
        return None
    if address is None:
        return None
    pointer = str(value.type.pointer())
    if "{" in pointer:
        return None
    ref = f"(*({pointer}) {int(address):#x})"
    try:
        gdb.parse_and_eval(ref)  # GDB can parse the type back (no memory is read)
    except gdb.error:
        return None
    return ref


_INTEGRAL_CODES = frozenset(c for c, name in _CODES.items() if name in _INTEGRAL)


def plain(value):
    """A value as one plain Python object: int for integral types, float, else GDB's text.

    Called once per expression by ``-mvnb-eval-many`` and the collector: the type's own
    code is looked at first, so only a typedef costs a ``strip_typedefs()``.
    """
    vtype = value.type
    code = vtype.code
    if code == gdb.TYPE_CODE_TYPEDEF:
        code = vtype.strip_typedefs().code
    if code in _INTEGRAL_CODES:
        return int(value)
    if code == gdb.TYPE_CODE_FLT:
        return float(value)
    return value.format_string()


class EvalCommand(gdb.MICommand):
    """-mvnb-eval EXPR [DEPTH]: one expression, as a value tree (see ``serialize``)."""

    def __init__(self):
        super().__init__("-mvnb-eval")

    def invoke(self, argv):
        depth = int(argv[1]) if len(argv) > 1 else 2
        try:
            value = gdb.parse_and_eval(argv[0])
        except gdb.error as error:
            raise gdb.GdbError(str(error)) from None
        try:
            value.fetch_lazy()
        except gdb.MemoryError as error:  # as GDB's print: the value itself is unreadable
            raise gdb.GdbError(str(error)) from None
        except gdb.error:
            pass  # optimized out or unavailable: serialize says so, as GDB's print does
        stripped = value.type.strip_typedefs()
        if stripped.code == gdb.TYPE_CODE_INT and stripped.sizeof > 1:
            # The common case, kept cheap: a plain integer prints as its decimal value, so
            # "str" is left to the reader (chars, size 1, print as 65 'A' and take the
            # general path). An optimized-out one takes the general path too.
            try:
                number = int(value)
            except gdb.error:
                return {"json": json.dumps(serialize(value, depth))}
            address = value.address
            at = "null" if address is None else int(address)
            return {"json": f'{{"type":{json.dumps(str(value.type))},"code":"int",'
                            f'"size":{stripped.sizeof},"address":{at},"int":{number}}}'}
        if stripped.code in _AGGREGATE_CODES:
            ref = object_ref(value)
            if ref is None:  # nothing to come back to later: read it all now
                depth = max(depth, FULL_DEPTH)
            out = serialize(value, depth)
            out["ref"] = ref
            return {"json": json.dumps(out)}
        return {"json": json.dumps(serialize(value, depth))}


class EvalManyCommand(gdb.MICommand):
    """-mvnb-eval-many JSON_LIST: many expressions in one round trip, as plain values.

    An expression that fails gives ``{"error": message}`` in its place instead of failing
    the whole batch.
    """

    def __init__(self):
        super().__init__("-mvnb-eval-many")

    def invoke(self, argv):
        results = []
        parse = gdb.parse_and_eval
        for expr in json.loads(argv[0]):
            try:
                results.append(plain(parse(expr)))
            except gdb.error as error:
                results.append({"error": str(error)})
        return {"json": json.dumps(results)}


class ReadManyCommand(gdb.MICommand):
    """-mvnb-read-many JSON[[address, length], ...]: memory ranges as hex strings."""

    def __init__(self):
        super().__init__("-mvnb-read-many")

    def invoke(self, argv):
        inferior = gdb.selected_inferior()
        results = []
        for address, length in json.loads(argv[0]):
            try:
                results.append(inferior.read_memory(address, length).tobytes().hex())
            except gdb.MemoryError as error:
                results.append({"error": str(error), "address": address})
        return {"json": json.dumps(results)}


class ReadPhysicalCommand(gdb.MICommand):
    """-mvnb-read-physical ADDRESS LENGTH: guest-physical memory through QEMU's stub.

    ``Qqemu.PhyMemMode:1`` makes the stub read and write physical addresses, GDB's own
    breakpoint insertions included; so the mode is switched on and off inside this one
    command (no other command runs between), only while the target is stopped and
    breakpoints are not always inserted (GDB inserts them on resume), and GDB's memory
    cache is flushed after. Answers ``{"hex"}``, ``{"error"}`` or ``{"unsupported"}``.
    """

    def __init__(self):
        super().__init__("-mvnb-read-physical")

    def invoke(self, argv):
        address, length = int(argv[0], 0), int(argv[1], 0)
        thread = gdb.selected_thread()
        if thread is None:
            raise gdb.GdbError("no target is attached")
        if thread.is_running():
            raise gdb.GdbError("the target is running; interrupt it before reading memory")
        if gdb.parameter("breakpoint always-inserted"):
            return {"json": json.dumps({"unsupported": "breakpoint always-inserted is on"})}
        reply = gdb.execute("maintenance packet Qqemu.PhyMemMode:1", to_string=True)
        if 'received: "OK"' not in reply:
            return {"json": json.dumps({"unsupported": reply.strip()})}
        try:
            data = gdb.selected_inferior().read_memory(address, length).tobytes()
            result = {"hex": data.hex()}
        except gdb.MemoryError as error:
            result = {"error": str(error)}
        finally:
            back = gdb.execute("maintenance packet Qqemu.PhyMemMode:0", to_string=True)
            gdb.execute("maintenance flush dcache", to_string=True)
            if 'received: "OK"' not in back:
                raise gdb.GdbError("QEMU's stub did not leave physical memory mode "
                                   f"({back.strip()}); reconnect before reading memory")
        return {"json": json.dumps(result)}


class Collector(gdb.Breakpoint):
    """A breakpoint that records expressions at every hit and lets the target run on.

    Used by ``Session.sample``: reading inside ``stop()`` costs a few microseconds where a
    stop + MI round trip costs a millisecond. The hit that reaches ``count`` stops; with
    ``stop_every`` every hit stops (mvnb's MI loop then adds columns GDB's Python cannot
    read inside ``stop()``, such as an ``rdtsc`` executed in the guest). ``halt`` makes the
    next hit stop: an ``-exec-interrupt`` can be lost when it meets a hit (see
    ``CollectControlCommand``), the halted collector cannot.
    """

    def __init__(self, spec, exprs, count, hardware, stop_every=False):
        kind = gdb.BP_HARDWARE_BREAKPOINT if hardware else gdb.BP_BREAKPOINT
        super().__init__(spec, type=kind, internal=False)
        self.exprs = list(exprs)
        self.count = count
        self.stop_every = bool(stop_every)
        self.halt = False
        self.hits = 0
        self.rows = []
        self.errors = []

    def record(self):
        row = [time.monotonic_ns()]
        for expr in self.exprs:
            try:
                row.append(plain(gdb.parse_and_eval(expr)))
            except gdb.error as error:
                row.append(None)
                self.errors.append(str(error))
        self.rows.append(row)
        self.hits += 1

    def stop(self):
        self.record()
        return (self.stop_every or self.halt
                or (self.count is not None and self.hits >= self.count))


COLLECTORS = {}
_NO_SYMBOL = re.compile(r'No symbol "([^"]+)" in current context')


def _location_blocks(location):
    """The code blocks ``location`` resolves to; a GdbError naming it when it resolves to
    nothing (so nothing is armed)."""
    try:
        _, sals = gdb.decode_line(location)
    except gdb.error as error:
        raise gdb.GdbError(f"cannot place a breakpoint at {location!r}: {error}") from None
    blocks = []
    for sal in sals or ():
        try:
            blocks.append(gdb.block_for_pc(sal.pc))
        except (gdb.error, RuntimeError):
            pass
    if not sals:
        raise gdb.GdbError(f"{location!r} resolves to no code address")
    return [b for b in blocks if b is not None]


def _in_scope(name, blocks):
    for block in blocks:
        try:
            if gdb.lookup_symbol(name, block)[0] is not None:
                return True
        except gdb.error:
            pass
    return False


def check_expressions(location, exprs):
    """Refuse, before anything is armed, expressions GDB cannot parse or whose symbols exist
    neither here nor at ``location``. ``whatis`` type-checks without side effects (no
    function is called in the guest, no memory needs to be readable)."""
    blocks = _location_blocks(location)
    bad = []
    for expr in exprs:
        try:
            gdb.execute(f"whatis {expr}", to_string=True)
            continue
        except gdb.MemoryError:
            continue
        except gdb.error as error:
            message = str(error)
        missing = _NO_SYMBOL.match(message)
        if missing and _in_scope(missing.group(1), blocks):
            continue  # a local or parameter of the function at the location
        if missing or message.startswith(("A syntax error", "No symbol table")):
            bad.append(f"{expr!r}: {message}")
    if bad:
        raise gdb.GdbError("cannot sample " + "; ".join(bad))


class CollectStartCommand(gdb.MICommand):
    """-mvnb-collect-start JSON{location, exprs, count, hardware, stop_every}: arm one.

    The location and the expressions are checked first (``check_expressions``): an error
    leaves no breakpoint behind. Answers the breakpoint number and its address (0 when
    GDB gives several or none).
    """

    def __init__(self):
        super().__init__("-mvnb-collect-start")

    def invoke(self, argv):
        spec = json.loads(argv[0])
        check_expressions(spec["location"], spec["exprs"])
        try:
            collector = Collector(spec["location"], spec["exprs"], spec.get("count"),
                                  spec.get("hardware", True), spec.get("stop_every", False))
        except gdb.error as error:
            raise gdb.GdbError(str(error)) from None
        COLLECTORS[collector.number] = collector
        locations = collector.locations
        address = locations[0].address if len(locations) == 1 else 0
        return {"number": str(collector.number), "address": str(address or 0)}


def _collector(number):
    collector = COLLECTORS.get(int(number))
    if collector is None:
        raise gdb.GdbError(f"no mvnb collector {number}")
    return collector


class CollectFetchCommand(gdb.MICommand):
    """-mvnb-collect-fetch NUMBER [delete]: rows collected since the last fetch.

    With ``delete`` the collector is deleted too, in the same command, so the rows and the
    breakpoint go together (a fetch that is lost leaves neither behind).
    """

    def __init__(self):
        super().__init__("-mvnb-collect-fetch")

    def invoke(self, argv):
        collector = _collector(argv[0])
        rows, collector.rows = collector.rows, []
        errors, collector.errors = collector.errors[:10], []
        if len(argv) > 1 and argv[1] == "delete":
            COLLECTORS.pop(collector.number, None)
            if collector.is_valid():
                collector.delete()
        return {"json": json.dumps({"rows": rows, "errors": errors, "hits": collector.hits})}


class CollectControlCommand(gdb.MICommand):
    """-mvnb-collect-control NUMBER record|halt: take a row now (the target sits at the
    location), or make the next hit stop.

    ``halt`` exists because GDB 13 drops an ``-exec-interrupt`` that arrives while a stop
    reply is already queued (remote.c: "the pending stop events will be collected"); when
    that stop is a collector hit whose ``stop()`` says no, GDB resumes and the interrupt is
    lost. A halted collector stops at its next hit instead.
    """

    def __init__(self):
        super().__init__("-mvnb-collect-control")

    def invoke(self, argv):
        collector = _collector(argv[0])
        if argv[1] == "record":
            collector.record()
        elif argv[1] == "halt":
            collector.halt = True
        else:
            raise gdb.GdbError(f"unknown collector action {argv[1]!r}")
        return {"hits": str(collector.hits)}


EvalCommand()
EvalManyCommand()
ReadManyCommand()
ReadPhysicalCommand()
CollectStartCommand()
CollectFetchCommand()
CollectControlCommand()
