"""Prometheus metrics for one process, in a registry of its own (no module-level state): the
runtime's here; each service registers its own on ``registry`` in its setup."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "http_requests_total", "HTTP requests served", ["service", "method", "route", "status"], registry=r)
        self.http_latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"],
            buckets=_LATENCY_BUCKETS, registry=r)
        self.events_published = Counter(
            "events_published_total", "Events published to the bus", ["topic", "type"], registry=r)
        self.events_consumed = Counter(
            "events_consumed_total", "Events handled by a consumer group, by outcome",
            ["topic", "group", "outcome"], registry=r)
        self.handler_latency = Histogram(
            "event_handler_duration_seconds", "Time a consumer handler took for one event",
            ["topic", "group"], buckets=_LATENCY_BUCKETS, registry=r)
        self.consumer_lag = Gauge(
            "consumer_lag_messages", "Messages not yet processed by a consumer group",
            ["topic", "partition", "group"], registry=r)
        self.outbox_backlog = Gauge(
            "outbox_backlog_events", "Events stored but not yet published (known to this replica)",
            ["collection"], registry=r)
        self.outbox_uncleared = Gauge(
            "outbox_uncleared_events", "Events published but not yet cleared from their documents", registry=r)
        self.outbox_clear_misses = Counter(
            "outbox_clear_misses_total", "Clears that matched nothing while the events stayed stored",
            ["collection"], registry=r)
        self.outbox_publish_failures = Counter(
            "outbox_publish_failures_total", "Outbox relay rounds that failed (bus or store unavailable)",
            registry=r)
        self.outbox_lease = Gauge(
            "outbox_lease_held", "1 where this replica's relay publishes the collection's events",
            ["collection"], registry=r)
        self.dead_letters = Counter(
            "dead_letters_total", "Messages sent to a dead-letter topic", ["topic", "group"], registry=r)
