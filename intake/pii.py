"""Applicant data encrypted at rest: AES-256-GCM per value, under a named key.

A value is stored as `<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`; the associated data is
the case code and the column, so a ciphertext copied into another row or column does not
decrypt. Keys come from settings (`MOTCUA_INTAKE_PII_KEYS`, "id:base64key,…", the first one
encrypts, the others only decrypt), so a key is rotated by putting a new one first: intake
re-encrypts older rows at start. In development a key is generated into data_dir/secrets.
"""

import base64
import binascii
import hashlib
import logging
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import or_, select
from sqlmodel import Session, col

from intake.models import Applicant
from intake.settings import IntakeSettings
from services.security.keys import dev_secret

log = logging.getLogger(__name__)
FIELDS = ("id_number", "name", "address", "phone")
NONCE_BYTES = 12


class PiiKeyError(ValueError):
    pass


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    """"k2:base64,k1:base64" -> [(k2, key), (k1, key)]; every key 32 bytes (AES-256)."""
    keys: list[tuple[str, bytes]] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        kid, sep, encoded = part.partition(":")
        if not sep or not kid.replace("-", "").replace("_", "").isalnum() or len(kid) > 40:
            raise PiiKeyError("each PII key is `id:base64key`, the id letters, digits, - or _")
        try:
            key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError) as exc:
            raise PiiKeyError(f"PII key {kid}: not base64") from exc
        if len(key) != 32:
            raise PiiKeyError(f"PII key {kid}: {len(key)} bytes, AES-256 needs 32")
        keys.append((kid, key))
    if not keys:
        raise PiiKeyError("no PII key given")
    if len({k for k, _ in keys}) != len(keys):
        raise PiiKeyError("two PII keys have the same id")
    return keys


class PiiCipher:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        self.active = keys[0][0]
        self._keys = {kid: AESGCM(key) for kid, key in keys}

    @classmethod
    def from_settings(cls, settings: IntakeSettings) -> "PiiCipher":
        if settings.pii_keys is not None:
            return cls(parse_keys(settings.pii_keys.get_secret_value()))
        # Validated: only development gets here without configured keys.
        key = _decode(dev_secret(settings.data_dir, "pii.key"))
        return cls([(f"dev-{hashlib.sha256(b'motcua-kid:' + key).hexdigest()[:8]}", key)])

    def encrypt(self, value: str, *, case_code: str, field: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.active].encrypt(nonce, value.encode(), _aad(case_code, field))
        return f"{self.active}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str, *, case_code: str, field: str) -> str:
        kid, _, body = stored.partition(".")
        aead = self._keys.get(kid)
        if aead is None:
            raise PiiKeyError(f"no key {kid!r} to decrypt {field} of {case_code}")
        raw = base64.urlsafe_b64decode(body)
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                _aad(case_code, field)).decode()
        except InvalidTag as exc:
            raise PiiKeyError(f"{field} of {case_code} does not decrypt under key {kid}") from exc

    def knows(self, kid: str | None) -> bool:
        return kid in self._keys

    # --- rows ------------------------------------------------------------------------------

    def seal(self, applicant: Applicant) -> Applicant:
        """Encrypt the plain values of a new row in place."""
        for field, value in self.sealed(applicant.model_dump()).items():
            setattr(applicant, field, value)
        return applicant

    def sealed(self, row: dict[str, Any]) -> dict[str, Any]:
        """A new applicant row (case_code, kind and the plain values) with the values
        encrypted under the active key."""
        out = dict(row)
        for field in FIELDS:
            value = out.get(field)
            if value is not None:
                out[field] = self.encrypt(value, case_code=row["case_code"], field=field)
        out["key_id"] = self.active
        return out

    def open(self, applicant: Applicant) -> dict[str, str | None]:
        out: dict[str, str | None] = {"kind": applicant.kind}
        for field in FIELDS:
            value = getattr(applicant, field)
            if value is not None and applicant.key_id is not None:
                value = self.decrypt(value, case_code=applicant.case_code, field=field)
            out[field] = value
        return out

    def reencrypt(self, session: Session, *, batch: int = 500) -> int:
        """Rows in plain text (written before encryption) or under an older key, re-sealed
        under the active key. Rows under a key this process does not hold are left alone."""
        done = 0
        after = ""
        while True:
            rows = list(session.execute(
                select(Applicant).where(
                    or_(col(Applicant.key_id).is_(None), col(Applicant.key_id) != self.active),
                    col(Applicant.case_code) > after,
                ).order_by(col(Applicant.case_code)).limit(batch)
            ).scalars())
            if not rows:
                return done
            for row in rows:
                after = row.case_code
                if row.key_id is not None and not self.knows(row.key_id):
                    log.warning("applicant of %s is under PII key %s, which this process "
                                "does not hold", row.case_code, row.key_id)
                    continue
                plain = self.open(row)
                for field in FIELDS:
                    setattr(row, field, plain[field])
                self.seal(row)
                done += 1
            session.flush()


def _aad(case_code: str, field: str) -> bytes:
    return f"motcua:intake_applicants:{case_code}:{field}".encode()


def _decode(encoded: str) -> bytes:
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


def generate_key_spec(kid: str) -> str:
    """A fresh `id:base64key` entry for MOTCUA_INTAKE_PII_KEYS."""
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"
