"""The message bus: one interface, two implementations (Kafka, embedded)."""

from services.bus.base import Bus, Consumer, Message, Record, TopicPartition
from services.bus.factory import make_bus

__all__ = ["Bus", "Consumer", "Message", "Record", "TopicPartition", "make_bus"]
