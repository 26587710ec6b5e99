"""What the Azure extension tells an observer (metrics): each ARM request and each token.

    ArmRequestPolicy     an azure-core per-retry policy on the ARM clients: every try of
                         every request, timed, with its operation and status
    ObservedCredential   the one credential, wrapped: a token it has not returned before
                         is an acquisition (the credential caches; the SDK's bearer policy
                         caches again), an exception a failure

The observer is a Protocol: this module knows nothing of Prometheus, and the metrics
extension knows nothing of azure-core.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from azure.core.pipeline.policies import AsyncHTTPPolicy

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.core.pipeline import PipelineRequest, PipelineResponse


class AzureObserver(Protocol):
    def arm_request(self, operation: str, status: str, seconds: float) -> None:
        """One try of an ARM request ended: ``status`` is the HTTP code or ``error``."""

    def token(self, ok: bool) -> None:
        """A token was acquired (``ok``) or its acquisition failed."""


def operation(method: str, path: str) -> str:
    """A bounded label for an ARM request: its method and resource type, names dropped.

    ``PUT /subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1``
    → ``PUT Microsoft.Compute/virtualMachines``; a POST to ``…/vm1/start`` →
    ``POST Microsoft.Compute/virtualMachines/start``; ``…/resourcegroups/rg`` →
    ``PUT resourceGroups``.
    """
    parts = [p for p in path.split("?")[0].split("/") if p]
    lowered = [p.lower() for p in parts]
    if "providers" in lowered:
        at = len(lowered) - 1 - lowered[::-1].index("providers")
        rest = parts[at + 1 :]
        if not rest:
            return f"{method} providers"
        types = [rest[0]] + rest[1::2]  # namespace, then type/name/type/name…
        return f"{method} {types[0]}/{'/'.join(types[1:])}".rstrip("/")
    if "resourcegroups" in lowered:
        return f"{method} resourceGroups"
    return f"{method} {'/'.join(parts[2:3]) or 'subscription'}"


class ArmRequestPolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """Times every try of an ARM request (a per-retry policy: retries count apart)."""

    def __init__(self, observer: AzureObserver) -> None:
        super().__init__()
        self.observer = observer

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        http = request.http_request
        op = operation(http.method, http.url.split("://", 1)[-1].partition("/")[2])
        t0 = time.perf_counter()
        try:
            response = await self.next.send(request)
        except Exception:
            self.observer.arm_request(op, "error", time.perf_counter() - t0)
            raise
        status = str(response.http_response.status_code)
        self.observer.arm_request(op, status, time.perf_counter() - t0)
        return response


class ObservedCredential:
    """An AsyncTokenCredential that tells ``observer`` of each acquisition and failure."""

    def __init__(self, inner: AsyncTokenCredential, observer: AzureObserver) -> None:
        self.inner = inner
        self.observer = observer
        # The last token per scope: ARM and Key Vault tokens alternate without either
        # being acquired anew.
        self._last: dict[tuple[str, ...], str] = {}

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        try:
            token = await self.inner.get_token(*scopes, **kwargs)
        except Exception:
            self.observer.token(False)
            raise
        if token.token != self._last.get(scopes):
            self._last[scopes] = token.token
            self.observer.token(True)
        return token

    async def close(self) -> None:
        await self.inner.close()

    async def __aenter__(self) -> ObservedCredential:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self.inner.__aexit__(*args)
