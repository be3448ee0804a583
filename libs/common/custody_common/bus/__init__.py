"""NATS JetStream: the topology (subjects, streams, durable consumers) and connections."""

from custody_common.bus.connection import connect, pull_batches
from custody_common.bus.topology import Topology

__all__ = ["Topology", "connect", "pull_batches"]
