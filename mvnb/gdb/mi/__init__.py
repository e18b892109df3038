"""GDB/MI: records (pure, no I/O) and the transport (one GDB process, one reader thread)."""

from .records import AsyncRecord, Record, ResultRecord, StreamRecord, parse_line, quote
from .transport import Pending, Transport

__all__ = [
    "AsyncRecord",
    "Pending",
    "Record",
    "ResultRecord",
    "StreamRecord",
    "Transport",
    "parse_line",
    "quote",
]
