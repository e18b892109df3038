"""GDB/MI: records (pure, no I/O), the dispatch of output lines, and the transport (one GDB
process, read by the caller that waits)."""

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
