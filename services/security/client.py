"""The client side of the token endpoint: an httpx auth that gets a token with a client id and
secret, renews it before it expires, and once more when a request is refused with 401."""

import base64
import time
from collections.abc import Generator

import httpx

TOKEN_PATH = "/v1/auth/token"


class ClientCredentials(httpx.Auth):
    requires_response_body = True

    def __init__(self, client_id: str, client_secret: str, *, token_url: str = TOKEN_PATH,
                 renew_before_s: float = 30.0) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self._url = token_url
        self._renew_before = renew_before_s
        self._token: str | None = None
        self._expires = 0.0

    def __repr__(self) -> str:  # never the secret
        return f"ClientCredentials({self.client_id!r})"

    @property
    def secret(self) -> str:
        return self._secret

    def _build_token_request(self, request: httpx.Request) -> httpx.Request:
        # RFC 6749 4.4: the client authenticates with HTTP Basic, the grant is form-encoded.
        basic = base64.b64encode(f"{self.client_id}:{self._secret}".encode()).decode()
        return httpx.Request("POST", request.url.join(self._url),
                             data={"grant_type": "client_credentials"},
                             headers={"Authorization": f"Basic {basic}"})

    def _store(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"token request refused: {response.status_code} {response.text[:300]}",
                request=response.request, response=response)
        body = response.json()
        self._token = str(body["access_token"])
        self._expires = time.monotonic() + float(body.get("expires_in", 60))

    def _fresh(self) -> bool:
        return self._token is not None and time.monotonic() < self._expires - self._renew_before

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._fresh():
            self._store((yield self._build_token_request(request)))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            # Expired early, or the signing key rotated: one new token, one retry.
            self._store((yield self._build_token_request(request)))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
