"""Value types shared by the event payloads."""

import unicodedata
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, StringConstraints


def _nfc(value: str) -> str:
    # Vietnamese text arrives in both composed and decomposed forms; store and compare one form.
    return unicodedata.normalize("NFC", value)


Text = Annotated[str, AfterValidator(_nfc)]
ShortText = Annotated[str, StringConstraints(max_length=500), AfterValidator(_nfc)]
AgencyCode = Annotated[
    str, StringConstraints(pattern=r"^[0-9A-Z]{3}\.[0-9A-Z]{2}\.[0-9A-Z]{2}\.[A-Z][0-9]{2}$")
]
ProcedureCode = Annotated[str, StringConstraints(pattern=r"^[0-9]\.[0-9]{6}$")]
CaseCode = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9A-Z]{3}\.[0-9A-Z]{2}\.[0-9A-Z]{2}\.[A-Z][0-9]{2}-[0-9]{6}-[0-9]{4,6}$"
    ),
]


class Channel(StrEnum):
    COUNTER = "counter"
    ONLINE = "online"
    POSTAL = "postal"


class OnlineLevel(StrEnum):
    PARTIAL = "partial"
    FULL = "full"


class TransferMethod(StrEnum):
    ELECTRONIC = "electronic"
    PAPER = "paper"


class PaymentMethod(StrEnum):
    ONLINE = "online"
    COUNTER = "counter"
    POST = "post"


class PaymentPortal(StrEnum):
    NATIONAL = "national"
    PROVINCIAL = "provincial"


class ReturnMethod(StrEnum):
    COUNTER = "counter"
    POST = "post"
    ONLINE = "online"


class Rating(StrEnum):
    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    NEUTRAL = "neutral"
    DISSATISFIED = "dissatisfied"
