"""Choose the bus from settings: Kafka when brokers are configured, else the embedded log."""

from services.bus.base import Bus
from services.bus.embedded import EmbeddedBus
from services.bus.kafka import KafkaBus
from services.settings import ServiceSettings


def make_bus(settings: ServiceSettings) -> Bus:
    if settings.kafka_bootstrap_servers:
        return KafkaBus(
            settings.kafka_bootstrap_servers,
            client_id=settings.kafka_client_id,
            partitions=settings.topic_partitions,
            connection=settings.kafka_options(),
        )
    url = settings.embedded_bus_url or settings.sqlite_url("bus")
    return EmbeddedBus(url, partitions=settings.topic_partitions)
