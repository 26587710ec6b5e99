"""``GET /_openapi.json``: the runner's endpoints and every job's parameters (OpenAPI 3.1).

For people writing CI steps and bots against the runner, and a target for fuzzers. Job
parameters are the same JSON Schema that ``GET /<job>`` shows (OpenAPI 3.1 speaks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner import __version__
from runner.kinds import Job
from runner.records import STATES

PROBLEM = {"$ref": "#/components/responses/Problem"}
TEXT = {"text/plain": {"schema": {"type": "string"}}}
SSE = {"text/event-stream": {"schema": {"type": "string"}}}
RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _job_operations(job: Job) -> dict[str, Any]:
    schema = job.describe()["parameters"]
    params = [
        {"name": name, "in": "query", "required": name in schema.get("required", []),
         "schema": prop, "description": prop.get("description", "")}
        for name, prop in schema.get("properties", {}).items()
    ]  # fmt: skip
    controls = [
        {"name": "_mode", "in": "query", "required": False,
         "schema": {"enum": ["sse", "text", "async", "wait"]}},
        {"name": "_timeout", "in": "query", "required": False,
         "schema": {"type": "number", "exclusiveMinimum": 0}},
    ]  # fmt: skip
    summary = job.description.splitlines()[0] if job.description else job.path
    post: dict[str, Any] = {
        "operationId": "run_" + job.path.replace("/", "_").replace("-", "_"),
        "summary": summary,
        "description": job.description,
        "tags": ["jobs"],
        "parameters": params + controls,
        "responses": {
            "200": {"description": "the run's output (text or SSE)", "content": TEXT | SSE},
            "202": _json({"$ref": "#/components/schemas/Accepted"}, "run accepted"),
            "409": {"description": "wait mode: the run was cancelled", "content": TEXT},
            "413": PROBLEM,
            "415": PROBLEM,
            "422": PROBLEM,
            "429": PROBLEM,
            "500": {"description": "wait mode: the run failed", "content": TEXT},
            "503": PROBLEM,
            "504": {"description": "wait mode: the run timed out", "content": TEXT},
        },
    }
    post["requestBody"] = job.body_schema()
    get = {
        "operationId": "describe_" + job.path.replace("/", "_").replace("-", "_"),
        "summary": f"describe {job.path}",
        "tags": ["jobs"],
        "responses": {"200": _json({"type": "object"}, "the job's description")},
    }
    return {"post": post, "get": get}


def document(jobs: Iterable[Job]) -> dict[str, Any]:
    """The OpenAPI document for this runner's endpoints and jobs."""
    paths: dict[str, Any] = {
        "/_health": {"get": {"operationId": "health", "responses": {"200": _json({}, "alive")}}},
        "/_ready": {
            "get": {
                "operationId": "ready",
                "responses": {"200": _json({}, "ready"), "503": _json({}, "draining")},
            }
        },
        "/_jobs": {"get": {"operationId": "jobs", "responses": {"200": _json({}, "catalogue")}}},
        "/_metrics": {
            "get": {
                "operationId": "metrics",
                "responses": {"200": {"description": "Prometheus text format", "content": TEXT}},
            }
        },
        "/_runs": {
            "get": {
                "operationId": "list_runs",
                "parameters": [
                    {"name": "job", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "comma-separated: " + ", ".join(STATES),
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                    {"name": "before", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "caller",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "who started it: user:alice, token:ci, webhook:github…",
                    },
                ],  # fmt: skip
                "responses": {"200": _json({}, "runs, newest first"), "422": PROBLEM},
            }
        },
        "/_runs/{run_id}": {
            "get": {
                "operationId": "get_run",
                "parameters": [RUN_ID],
                "responses": {"200": _json({}, "the run's record"), "404": PROBLEM},
            }
        },
        "/_runs/{run_id}/log": {
            "get": {
                "operationId": "get_log",
                "parameters": [RUN_ID],
                "responses": {"200": {"description": "output", "content": TEXT}, "404": PROBLEM},
            }
        },
        "/_runs/{run_id}/events": {
            "get": {
                "operationId": "get_events",
                "parameters": [
                    RUN_ID,
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "SSE", "content": SSE}, "404": PROBLEM},
            }
        },
        "/_runs/{run_id}/notifications": {
            "get": {
                "operationId": "get_notifications",
                "parameters": [RUN_ID],
                "responses": {
                    "200": _json({}, "notices about the run: channel, tries, outcome"),
                    "404": PROBLEM,
                },
            }
        },
        "/_runs/{run_id}/cancel": {
            "post": {
                "operationId": "cancel_run",
                "parameters": [RUN_ID],
                "responses": {"200": _json({}, "cancelled"), "404": PROBLEM, "409": PROBLEM},
            }
        },
    }
    for job in jobs:
        paths["/" + job.path] = _job_operations(job)
    return {
        "openapi": "3.1.0",
        "info": {"title": "runner", "version": __version__},
        "paths": paths,
        "components": {
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details",
                    "content": {"application/problem+json": {"schema": {"type": "object"}}},
                }
            },
            "schemas": {
                "Accepted": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "job": {"type": "string"},
                        "state": {"type": "string"},
                        "links": {"type": "object"},
                    },
                }
            },
        },
    }
