"""Prometheus metrics of one server process, in the text exposition format (``GET /metrics``).

Each process counts its own requests; with several workers each scrape reaches one of them, so the
series carry a ``pid`` label and a scraper sums them (docs/operations.md).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.started = time.time()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.events: dict[tuple[str, str], int] = defaultdict(int)  # (name, label) counters

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        b = self.buckets.get(route)
        if b is None:
            b = self.buckets[route] = [0] * len(BUCKETS)
        for i, edge in enumerate(BUCKETS):
            if seconds <= edge:
                b[i] += 1
                break
        self.sums[route] += seconds
        self.counts[route] += 1

    def count(self, name: str, label: str) -> None:
        self.events[(name, label)] += 1

    def render(self, extra: dict[str, float] | None = None) -> str:
        pid = self.pid
        out = [
            "# HELP npistack_http_requests_total HTTP requests by method, route and status.",
            "# TYPE npistack_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            out.append(
                f'npistack_http_requests_total{{method="{method}",route="{route}",status="{status}",pid="{pid}"}} {n}'
            )
        out += [
            "# HELP npistack_http_request_duration_seconds Request duration by route.",
            "# TYPE npistack_http_request_duration_seconds histogram",
        ]
        for route, b in sorted(self.buckets.items()):
            acc = 0
            for edge, n in zip(BUCKETS, b, strict=True):
                acc += n
                out.append(
                    f'npistack_http_request_duration_seconds_bucket{{route="{route}",le="{edge}",pid="{pid}"}} {acc}'
                )
            out.append(
                f'npistack_http_request_duration_seconds_bucket{{route="{route}",le="+Inf",pid="{pid}"}} {self.counts[route]}'
            )
            out.append(
                f'npistack_http_request_duration_seconds_sum{{route="{route}",pid="{pid}"}} {self.sums[route]:.6f}'
            )
            out.append(
                f'npistack_http_request_duration_seconds_count{{route="{route}",pid="{pid}"}} {self.counts[route]}'
            )
        out += [
            "# HELP npistack_lookups_total Provider lookups by cache status (hit, stale, miss, upstream_error).",
            "# TYPE npistack_lookups_total counter",
        ]
        for (name, label), n in sorted(self.events.items()):
            if name == "lookup":
                out.append(f'npistack_lookups_total{{cache="{label}",pid="{pid}"}} {n}')
        out += [
            "# HELP npistack_process_start_time_seconds Start time of this server process.",
            "# TYPE npistack_process_start_time_seconds gauge",
            f'npistack_process_start_time_seconds{{pid="{pid}"}} {self.started:.0f}',
        ]
        for name, value in (extra or {}).items():
            out += [f"# TYPE {name} gauge", f'{name}{{pid="{pid}"}} {value}']
        return "\n".join(out) + "\n"
