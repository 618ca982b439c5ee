"""`motcua clients create|list|revoke|token`: the API clients, on intake's database.

Settings come from the environment, as for the services (INTAKE_DATABASE_URL / DATABASE_URL,
or intake.db in MOTCUA_DATA_DIR). A revocation is published by the running intake within a
second (its outbox relay), and every process refuses the client from then on.
"""

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from motcua.console import table
from services.security.client import TOKEN_PATH, ClientCredentials


def register(sub: Any) -> None:
    p = sub.add_parser("clients", help="create, list and revoke API clients; get a token")
    p.add_argument("--data-dir", default=None,
                   help="data dir of `motcua up` (default MOTCUA_DATA_DIR or ./data)")
    actions = p.add_subparsers(dest="action", required=True)
    c = actions.add_parser("create", help="register a client; prints its secret once")
    c.add_argument("--kind", required=True, choices=["counter", "portal", "admin"])
    c.add_argument("--name", required=True)
    c.add_argument("--agency", help="counter: the agency code it writes for")
    c.add_argument("--province", help="portal: the province code whose KPIs it reads")
    c.add_argument("--national", action="store_true",
                   help="counter or portal without an agency or province: every one")
    c.add_argument("--id", dest="client_id", help="choose the client id (default generated)")
    c.add_argument("--json", action="store_true", help="print JSON (with the secret)")
    c.set_defaults(func=cmd_create)
    ls = actions.add_parser("list", help="every client (never a secret)")
    ls.add_argument("--active", action="store_true", help="only clients not revoked")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    r = actions.add_parser("revoke", help="revoke a client: its tokens are refused everywhere")
    r.add_argument("client_id")
    r.set_defaults(func=cmd_revoke)
    t = actions.add_parser("token", help="print an access token (POST /v1/auth/token)")
    add_credential_options(t, default_kind="counter", url=True)
    t.set_defaults(func=cmd_token)


def add_credential_options(p: argparse.ArgumentParser, *, default_kind: str,
                           url: bool = False) -> None:
    """--credentials/--as, --client-id/--client-secret, --token, as every HTTP command takes."""
    if url:
        p.add_argument("--url", default=os.environ.get("MOTCUA_URL", "http://127.0.0.1:8000"),
                       help="intake, or `motcua up`")
    p.add_argument("--auth-url", default=os.environ.get("MOTCUA_AUTH_URL"),
                   help="intake's token endpoint when --url is another service "
                        "(default: --url's /v1/auth/token)")
    p.add_argument("--credentials", default=os.environ.get("MOTCUA_CREDENTIALS"),
                   help="credentials.json written by `motcua up` (default: the data dir's)")
    p.add_argument("--as", dest="as_kind", default=default_kind,
                   choices=["counter", "portal", "admin"],
                   help=f"which client of the credentials file (default {default_kind})")
    p.add_argument("--client-id", default=os.environ.get("MOTCUA_CLIENT_ID"))
    p.add_argument("--client-secret", default=os.environ.get("MOTCUA_CLIENT_SECRET"),
                   help="prefer the MOTCUA_CLIENT_SECRET variable: arguments are visible "
                        "to other users in the process list")
    p.add_argument("--token", default=os.environ.get("MOTCUA_TOKEN"),
                   help="an access token to send as it is")


def _data_dir(args: argparse.Namespace) -> Path:
    given = getattr(args, "data_dir", None) or os.environ.get("MOTCUA_DATA_DIR") or "data"
    return Path(given).resolve()


def credentials_file(args: argparse.Namespace) -> Path | None:
    if getattr(args, "credentials", None):
        return Path(args.credentials)
    default = _data_dir(args) / "credentials.json"
    return default if default.is_file() else None


def auth_for(args: argparse.Namespace, kind: str) -> httpx.Auth | None:
    """How an HTTP command authenticates as `kind`: a given token, a given id and secret, or
    that kind's entry in the credentials file; None when nothing is configured."""
    if args.token:
        return _Bearer(args.token)
    token_url = args.auth_url or TOKEN_PATH
    if args.client_id and args.client_secret:
        return ClientCredentials(args.client_id, args.client_secret, token_url=token_url)
    path = credentials_file(args)
    if path is None:
        return None
    entry = json.loads(path.read_text(encoding="utf-8")).get("clients", {}).get(kind)
    if entry is None:
        sys.exit(f"{path} has no {kind} client; create one with `motcua clients create`")
    return ClientCredentials(entry["client_id"], entry["client_secret"], token_url=token_url)


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _settings(args: argparse.Namespace) -> Any:
    from intake.settings import IntakeSettings

    if getattr(args, "data_dir", None):
        return IntakeSettings(data_dir=_data_dir(args))
    return IntakeSettings()


def _run(args: argparse.Namespace, fn: Any, **kwargs: Any) -> Any:
    from intake.bootstrap import migrated_engine
    from services.db import transaction

    engine = migrated_engine(_settings(args))
    try:
        with transaction(engine) as session:
            return fn(session=session, **kwargs)
    finally:
        engine.dispose()


def cmd_create(args: argparse.Namespace) -> None:
    from intake.clients import ClientCreate, create_client
    from registry.store import CatalogueStore
    from services.errors import ValidationFailed

    try:
        data = ClientCreate(name=args.name, kind=args.kind, agency_code=args.agency,
                            province_code=args.province, national=args.national)

        def create(*, session: Any) -> tuple[dict[str, Any], str]:
            catalogue = CatalogueStore("intake").catalogue(session)
            return create_client(session=session, data=data, catalogue=catalogue,
                                 created_by=f"cli:{os.environ.get('USER', 'unknown')}",
                                 now=datetime.now(UTC), client_id=args.client_id)

        client, secret = _run(args, create)
    except ValidationFailed as exc:
        sys.exit(f"not created: {exc.detail}")
    except ValueError as exc:  # pydantic's, for a malformed agency or province code
        sys.exit(f"not created: {exc}")
    if args.json:
        print(json.dumps({**client, "client_secret": secret}, default=str, indent=2))
        return
    print(f"client_id:     {client['client_id']}\nclient_secret: {secret}\n"
          "The secret is shown this once; it is stored only as a hash.")


def cmd_list(args: argparse.Namespace) -> None:
    from intake.clients import list_clients

    items = _run(args, list_clients, include_revoked=not args.active)
    if args.json:
        print(json.dumps(items, default=str, indent=2))
        return
    print(table(["client_id", "kind", "scope", "name", "created_at", "revoked_at"], [
        [c["client_id"], c["kind"], c["agency_code"] or c["province_code"]
         or ("national" if c["national"] else "—"), c["name"],
         str(c["created_at"])[:19], str(c["revoked_at"])[:19] if c["revoked_at"] else None]
        for c in items]))


def cmd_revoke(args: argparse.Namespace) -> None:
    from intake.clients import revoke_client
    from services.errors import NotFound

    try:
        client, changed = _run(args, revoke_client, client_id=args.client_id,
                               revoked_by=f"cli:{os.environ.get('USER', 'unknown')}",
                               now=datetime.now(UTC), source="/motcua/cli")
    except NotFound as exc:
        sys.exit(exc.detail)
    print(f"revoked {client['client_id']}" if changed
          else f"{client['client_id']} was already revoked at {client['revoked_at']}")


def cmd_token(args: argparse.Namespace) -> None:
    auth = auth_for(args, args.as_kind)
    if not isinstance(auth, ClientCredentials):
        sys.exit("give --client-id and --client-secret (or MOTCUA_CLIENT_ID and "
                 "MOTCUA_CLIENT_SECRET), or --credentials")
    with httpx.Client(base_url=args.url, timeout=30) as client:
        r = client.post(args.auth_url or TOKEN_PATH, data={"grant_type": "client_credentials"},
                        auth=httpx.BasicAuth(auth.client_id, auth.secret))
    if r.status_code != 200:
        sys.exit(f"error {r.status_code}: {r.text}")
    print(r.json()["access_token"])
