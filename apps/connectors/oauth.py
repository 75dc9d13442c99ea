"""OAuth 2.0 client credentials: one token per (token URL, client id, scope) per process,
shared by threads and reused until shortly before it expires."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

# Refresh this long before the token's stated expiry, so no call carries a dying token.
EXPIRY_MARGIN_SECONDS = 30


class TokenError(Exception):
    """The token endpoint refused or could not be reached."""


@dataclass(frozen=True)
class Credentials:
    token_url: str
    client_id: str
    client_secret: str
    scope: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.token_url, self.client_id, self.scope)


class TokenCache:
    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, credentials: Credentials, timeout: float) -> str:
        """A valid access token, fetched only when none is cached or it is about to expire."""
        with self._lock:
            cached = self._tokens.get(credentials.key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            token, lifetime = self._fetch(credentials, timeout)
            self._tokens[credentials.key] = (token, time.monotonic() + max(lifetime - EXPIRY_MARGIN_SECONDS, 0))
            return token

    def invalidate(self, credentials: Credentials, token: str) -> None:
        """Forget `token` after a 401, unless another thread already replaced it."""
        with self._lock:
            cached = self._tokens.get(credentials.key)
            if cached and cached[0] == token:
                del self._tokens[credentials.key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    @staticmethod
    def _fetch(credentials: Credentials, timeout: float) -> tuple[str, float]:
        if not credentials.token_url:
            raise TokenError("No token URL: set the job type's token_url or OAUTH_TOKEN_URL.")
        scope = credentials.scope.split() or None
        session = OAuth2Session(client=BackendApplicationClient(client_id=credentials.client_id, scope=scope))
        try:
            token = session.fetch_token(
                token_url=credentials.token_url,
                auth=HTTPBasicAuth(credentials.client_id, credentials.client_secret),
                include_client_id=False,
                scope=scope,
                timeout=timeout,
            )
        except OAuth2Error as exc:
            raise TokenError(f"Token endpoint refused the client credentials: {exc.error}") from None
        except Exception as exc:  # connection refused, timeouts, a non-JSON answer
            raise TokenError(f"Token endpoint {credentials.token_url} failed: {type(exc).__name__}: {exc}") from None
        return token["access_token"], float(token.get("expires_in") or 3600)


tokens = TokenCache()
