"""Names of every subject, stream and durable consumer, all under one namespace so that
several stacks (and parallel test runs) share a NATS server without touching each other."""

from __future__ import annotations

from dataclasses import dataclass

SERVICES = ("intake", "evidence", "audit")


@dataclass(frozen=True)
class Topology:
    """Subjects, streams and consumers of one Custody stack."""

    namespace: str = "custody"

    @property
    def _stream_prefix(self) -> str:
        return self.namespace.upper().replace(".", "_").replace("-", "_")

    @property
    def events_stream(self) -> str:
        """Every custody event of every service."""
        return f"{self._stream_prefix}_EVENTS"

    def events_subject(self, service: str) -> str:
        """The subject ``service`` publishes its custody events on (and only it may)."""
        return f"{self.namespace}.events.{service}"

    @property
    def events_wildcard(self) -> str:
        return f"{self.namespace}.events.*"

    @property
    def submissions_stream(self) -> str:
        """Completed submissions, from intake to evidence's sealer."""
        return f"{self._stream_prefix}_SUBMISSIONS"

    @property
    def submission_completed_subject(self) -> str:
        return f"{self.namespace}.submissions.completed"

    @property
    def part_stored_subject(self) -> str:
        """Core NATS, no stream: intake's hint that a part of an upload in progress is stored."""
        return f"{self.namespace}.parts.stored"

    @property
    def audit_consumer(self) -> str:
        """Audit's durable pull consumer on the events stream."""
        return f"{self.namespace}-audit"

    @property
    def sealer_consumer(self) -> str:
        """Evidence's durable pull consumer on the submissions stream."""
        return f"{self.namespace}-evidence-sealer"
