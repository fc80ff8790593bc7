"""`GET /metrics`: the server's counters in Prometheus' text format (prometheus-client).

Each app has its own registry, so two servers in one process (tests) keep their own
counts. Requests are labelled by route (the known routes, else "other", so a scan of
random paths cannot grow the label set) and by the id of the API key they carried
(keys.py), never the key. What is measured:

- `ctxagent_requests_total{route,status,key_id}` and `ctxagent_requests_in_flight`;
- `ctxagent_request_seconds{route}`: arrival to the last byte sent (a stream's whole life);
- `ctxagent_queue_wait_seconds`: waiting for a worker thread (`--max-concurrent`);
- `ctxagent_time_to_first_event_seconds`: arrival to a stream's first progress event;
- `ctxagent_prompt_tokens_total`, `ctxagent_completion_tokens_total`, `ctxagent_engine_calls_total`
  by key id, from each answered request's usage;
- `ctxagent_cancellations_total{reason}`: requests stopped because the client left or the
  request timed out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

ROUTES = frozenset({"/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions", "/tokenize"})
# Seconds: from a quick pass-through completion to a long recipe on a CPU.
SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def route_label(path: str) -> str:
    return path if path in ROUTES else "other"


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("ctxagent_requests", "HTTP requests answered, by route, status and API key id", ["route", "status", "key_id"], registry=r)
        self.in_flight = Gauge("ctxagent_requests_in_flight", "HTTP requests being handled now", registry=r)
        self.request_seconds = Histogram("ctxagent_request_seconds", "Arrival to last byte sent, by route", ["route"], buckets=SECONDS_BUCKETS, registry=r)
        self.queue_wait = Histogram("ctxagent_queue_wait_seconds", "Seconds a request waited for a worker thread", buckets=SECONDS_BUCKETS, registry=r)
        self.first_event = Histogram("ctxagent_time_to_first_event_seconds", "Arrival to a stream's first progress event", buckets=SECONDS_BUCKETS, registry=r)
        self.prompt_tokens = Counter("ctxagent_prompt_tokens", "Prompt tokens of answered requests, by API key id", ["key_id"], registry=r)
        self.completion_tokens = Counter("ctxagent_completion_tokens", "Completion tokens of answered requests, by API key id", ["key_id"], registry=r)
        self.engine_calls = Counter("ctxagent_engine_calls", "Engine calls of answered requests, by API key id", ["key_id"], registry=r)
        self.cancellations = Counter("ctxagent_cancellations", "Requests stopped before they finished: the client left or the request timed out", ["reason"], registry=r)
        for reason in ("disconnect", "timeout"):
            self.cancellations.labels(reason)  # present from the start, at 0

    def usage(self, key_id: str, prompt_tokens: int, completion_tokens: int, engine_calls: int) -> None:
        self.prompt_tokens.labels(key_id).inc(prompt_tokens)
        self.completion_tokens.labels(key_id).inc(completion_tokens)
        self.engine_calls.labels(key_id).inc(engine_calls)

    def render(self) -> bytes:
        return generate_latest(self.registry)
