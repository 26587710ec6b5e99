"""Show the Azure identity the runner acts as: kind, ids, tenant, subscription, endpoint.

Asks for one token (from the shared credential's cache when it has one) and prints the
ids it carries; the token itself is never shown.
"""

from __future__ import annotations

import json
import time

from runner import Context
from runner.azure.identity import token_claims


async def run(ctx: Context, as_json: bool = False) -> None:
    az = await ctx.azure()
    token = await az.credential.get_token(az.scope)
    claims = token_claims(token.token)
    info = {
        "kind": az.identity.kind,
        "endpoint_kind": az.identity.endpoint_kind,
        "token_endpoint": az.identity.endpoint,
        "client_id": claims.get("appid") or claims.get("azp") or az.identity.client_id,
        "principal_id": claims.get("oid"),
        "tenant_id": claims.get("tid"),
        "subscription_id": az.subscription_id,
        "location": az.location,
        "resource_id": claims.get("xms_mirid"),
        "token_expires_in_s": int(token.expires_on - time.time()),
    }
    if as_json:
        ctx.print(json.dumps(info))
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        if value is not None:
            ctx.print(f"{key.replace('_', ' '):{width}}  {value}")
