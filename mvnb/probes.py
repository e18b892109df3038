"""Register probes on a live session: LAPIC state, CPUID, MSRs, control registers.

``ProbesMixin`` is mixed into ``Session``; see issue "Registers you can see".
"""

from __future__ import annotations

__all__ = ["ProbesMixin"]


class ProbesMixin:
    """Methods of ``Session`` that read registers the stub does not expose directly."""
