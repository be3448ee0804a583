"""NATS JetStream: the topology (subjects, streams, durable consumers) and connections."""

from custody_common.bus.connection import PullConsumer, connect, pull_batches
from custody_common.bus.topology import Topology

__all__ = ["PullConsumer", "Topology", "connect", "pull_batches"]
