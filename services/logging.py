"""Logging: one line per record, UTF-8, with the logger name, the request id and the calling
client; never request bodies, secrets or personal data."""

import logging
import sys
from contextvars import ContextVar

# Set per request by services.http.RequestId and the authentication dependency; "-" outside.
REQUEST_ID: ContextVar[str] = ContextVar("motcua_request_id", default="-")
CLIENT_ID: ContextVar[str] = ContextVar("motcua_client_id", default="-")


class RequestContext(logging.Filter):
    """Stamps every record with the request id and client id of the request it belongs to."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.client_id = CLIENT_ID.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestContext())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(client_id)s]: %(message)s",
        "%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
