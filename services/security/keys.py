"""Secrets for development: generated once into `<data_dir>/secrets/`, readable by the owner only.

Outside development the settings refuse to start without real secrets (services.settings), so
nothing here runs in production. Processes sharing a data dir (`motcua up`, or `motcua intake`,
`routing` and `metrics` started from one directory) share the generated values.
"""

import base64
import contextlib
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from services.settings import ServiceSettings


def dev_secret(data_dir: Path, name: str, *, nbytes: int = 32) -> str:
    """The secret called `name` in `data_dir/secrets`, created (0600) if it does not exist.

    Created under a temporary name and linked into place, so a process starting at the same
    moment reads either nothing (and creates its own link, which fails and reads ours) or the
    whole value, never half a file."""
    folder = data_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if not path.exists():
        value = base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode().rstrip("=")
        tmp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return path.read_text().strip()


def signing_keys(settings: ServiceSettings) -> tuple[bytes, bytes | None]:
    """(current key, previous key or None) for the bearer tokens."""
    current = _value(settings.auth_signing_key)
    if current is None:
        # Validated: only development gets here without a configured key.
        current = dev_secret(settings.data_dir, "auth-signing.key")
    previous = _value(settings.auth_previous_signing_key)
    return current.encode(), previous.encode() if previous else None


def _value(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
