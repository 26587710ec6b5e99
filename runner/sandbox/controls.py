"""Knobs for tests and benchmarks: operation latency, injected faults, request counters.

Operations are named by their ARM action, e.g. ``Microsoft.Compute/virtualMachines/write``.
A pattern matches an action when it equals it, is a prefix of it at a ``/`` boundary
(``Microsoft.Compute/virtualMachines`` matches every VM action) or matches it as a
glob (``Microsoft.Network/*``); case never matters. The longest matching pattern wins.

Every method takes a lock: tests call them from their own thread while the servers run
in the sandbox's event loop.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, replace
from enum import StrEnum
from fnmatch import fnmatchcase

__all__ = ["Controls", "Fault", "FaultKind", "ImdsMode", "matches"]


def matches(pattern: str, action: str) -> bool:
    """Whether ``pattern`` selects ``action`` (see the module docstring)."""
    p, a = pattern.lower().rstrip("/"), action.lower()
    return a == p or a.startswith(p + "/") or fnmatchcase(a, p)


class FaultKind(StrEnum):
    """What an injected fault does to the next matching request."""

    THROTTLE = "throttle"  # 429 + Retry-After, before the request is processed
    ERROR = "error"  # 500 InternalServerError, before the request is processed
    PROVISION_FAILED = "provision_failed"  # accepted, but the long-running operation fails


class ImdsMode(StrEnum):
    """How the identity endpoints (or, as ``vault_mode``, the Key Vault listener) behave."""

    UP = "up"
    ERROR = "error"  # every request answers 500 (Key Vault: 503)
    REFUSE = "refuse"  # the listener is closed: connection refused


@dataclass(frozen=True)
class Fault:
    """A fault that fires on the next ``times`` requests whose action matches ``operation``."""

    kind: FaultKind
    operation: str
    times: int = 1
    retry_after: int = 1

    @classmethod
    def throttle(cls, operation: str, times: int = 1, retry_after: int = 1) -> Fault:
        """429 TooManyRequests with ``Retry-After: retry_after``."""
        return cls(FaultKind.THROTTLE, operation, times, retry_after)

    @classmethod
    def error(cls, operation: str, times: int = 1) -> Fault:
        """500 InternalServerError."""
        return cls(FaultKind.ERROR, operation, times)

    @classmethod
    def provision_failed(cls, operation: str, times: int = 1) -> Fault:
        """The operation is accepted, then its long-running operation ends ``Failed``."""
        return cls(FaultKind.PROVISION_FAILED, operation, times)


class Controls:
    """Latency, faults, IMDS mode and counters, shared by the sandbox's apps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latency: dict[str, float] = {}
        self._faults: list[Fault] = []
        self._token_requests: Counter[str] = Counter()
        self._tokens_issued: Counter[str] = Counter()
        self._arm_calls: Counter[str] = Counter()
        self._vault_calls: Counter[str] = Counter()
        self.imds_mode = ImdsMode.UP
        self.vault_mode = ImdsMode.UP

    # -- latency ------------------------------------------------------------------------
    def set_latency(self, latency: dict[str, float]) -> None:
        """Replace the latency table: pattern → seconds until the operation completes."""
        with self._lock:
            self._latency = {k: float(v) for k, v in latency.items()}

    @property
    def latency(self) -> dict[str, float]:
        """A copy of the latency table."""
        with self._lock:
            return dict(self._latency)

    def latency_for(self, action: str) -> float:
        """Seconds the long-running operation for ``action`` takes (0 by default)."""
        with self._lock:
            found = [(len(p), s) for p, s in self._latency.items() if matches(p, action)]
        return max(found)[1] if found else 0.0

    # -- faults -------------------------------------------------------------------------
    def inject(self, fault: Fault) -> None:
        """Arm a fault; it fires ``fault.times`` times then disappears."""
        if fault.times < 1:
            raise ValueError("a fault must fire at least once")
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Disarm every pending fault."""
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """The faults still armed."""
        with self._lock:
            return list(self._faults)

    def take_fault(self, action: str, kinds: tuple[FaultKind, ...]) -> Fault | None:
        """Consume one firing of the first armed fault of ``kinds`` matching ``action``."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.kind in kinds and matches(fault.operation, action):
                    if fault.times <= 1:
                        del self._faults[i]
                    else:
                        self._faults[i] = replace(fault, times=fault.times - 1)
                    return fault
        return None

    # -- counters -----------------------------------------------------------------------
    def count_token_request(self, kind: str, *, issued: bool) -> None:
        """Record one request to a token endpoint of ``kind`` (and whether it got a token)."""
        with self._lock:
            self._token_requests[kind] += 1
            if issued:
                self._tokens_issued[kind] += 1

    def count_arm_call(self, action: str) -> None:
        """Record one ARM request, by action (polls count as ``poll``)."""
        with self._lock:
            self._arm_calls[action] += 1

    def count_vault_call(self, action: str) -> None:
        """Record one Key Vault request, by data action (``challenge``: unauthenticated)."""
        with self._lock:
            self._vault_calls[action] += 1

    @property
    def vault_calls(self) -> dict[str, int]:
        """Key Vault requests by data action; ``challenge`` counts the 401s sent."""
        with self._lock:
            return dict(self._vault_calls)

    @property
    def token_requests(self) -> dict[str, int]:
        """Requests that reached each token endpoint kind, Arc challenges included."""
        with self._lock:
            return dict(self._token_requests)

    @property
    def tokens_issued(self) -> dict[str, int]:
        """Tokens handed out, by endpoint kind."""
        with self._lock:
            return dict(self._tokens_issued)

    @property
    def arm_calls(self) -> dict[str, int]:
        """ARM requests by action, e.g. ``Microsoft.Compute/virtualMachines/write``."""
        with self._lock:
            return dict(self._arm_calls)

    def reset_counters(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._token_requests.clear()
            self._tokens_issued.clear()
            self._arm_calls.clear()
            self._vault_calls.clear()

    def snapshot(self) -> dict[str, object]:
        """Everything, as JSON-ready data (the admin endpoint's answer)."""
        return {
            "latency": self.latency,
            "faults": [
                {"kind": str(f.kind), "operation": f.operation, "times": f.times}
                for f in self.faults
            ],
            "imds_mode": str(self.imds_mode),
            "vault_mode": str(self.vault_mode),
            "vault_calls": self.vault_calls,
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "arm_calls": self.arm_calls,
        }
