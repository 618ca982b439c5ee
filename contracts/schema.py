"""JSON Schema (draft 2020-12) for each event as it travels: the envelope with its payload.

The schemas are derived from the pydantic models, never written by hand, so they cannot say
something the codec does not. `python -m contracts.generate` writes them to contracts/schemas/.
"""

from typing import Any

from contracts.envelope import Envelope
from contracts.event import Event

JsonSchema = dict[str, Any]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://motcua.vn/schemas/"
DEFS_REF = "#/$defs/{model}"


def schema_id(cls: type[Event]) -> str:
    return f"{ID_BASE}{cls.event_type()}/v{cls.VERSION}.json"


def schema_filename(cls: type[Event]) -> str:
    return f"{cls.event_type()}.v{cls.VERSION}.json"


def envelope_parts(
    cls: type[Event], *, ref_template: str
) -> tuple[JsonSchema, dict[str, JsonSchema]]:
    """The envelope schema for one event type, and the definitions its `data` refers to.

    `data` is a `$ref` to the payload model (named after its class) and `type` / `dataversion`
    are pinned with `const`. The definitions are the payload model and the enums it uses, keyed
    by name; `ref_template` says where the caller will put them (`$defs` or AsyncAPI components).
    """
    payload = cls.model_json_schema(ref_template=ref_template)
    defs: dict[str, JsonSchema] = payload.pop("$defs", {})
    if cls.__name__ in defs:
        raise ValueError(f"{cls.__name__} clashes with a definition it uses")
    defs[cls.__name__] = payload

    envelope = Envelope.model_json_schema(ref_template=ref_template)
    # The only definition the generic envelope has is the Event base that `data` is typed as;
    # it is replaced by the concrete payload below. Fail loudly if the envelope grows more.
    if set(envelope.pop("$defs", {})) != {Event.__name__}:
        raise ValueError("Envelope refers to definitions schema.py does not know about")
    props = envelope["properties"]
    props["type"] = {**props["type"], "const": cls.event_type()}
    props["dataversion"] = {**props["dataversion"], "const": cls.VERSION}
    props["data"] = {"$ref": ref_template.format(model=cls.__name__)}
    envelope["title"] = f"{cls.__name__} ({cls.event_type()} v{cls.VERSION})"
    envelope["description"] = (
        f"A CloudEvents 1.0 envelope (structured JSON mode) carrying {cls.__name__} "
        f"v{cls.VERSION}, as contracts.encode writes it."
    )
    return envelope, defs


def event_schema(cls: type[Event]) -> JsonSchema:
    """The standalone JSON Schema document for one event type's current version."""
    envelope, defs = envelope_parts(cls, ref_template=DEFS_REF)
    return {"$schema": DIALECT, "$id": schema_id(cls), **envelope, "$defs": defs}
