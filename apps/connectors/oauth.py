"""OAuth 2.0 client credentials: one token per (token URL, client id, scope) per process,
shared by threads and reused until shortly before it expires."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

# Refresh this long before the token's stated expiry, so no call carries a dying token.
EXPIRY_MARGIN_SECONDS = 30
# The longest pause before a failing token endpoint is asked again.
MAX_FAILURE_PAUSE_SECONDS = 60.0


class TokenError(Exception):
    """The token endpoint refused or could not be reached."""


@dataclass(frozen=True)
class Credentials:
    token_url: str
    client_id: str
    # Never in a repr: not in a log line, a DEBUG page's variables or an error report.
    client_secret: str = field(repr=False)
    scope: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.token_url, self.client_id, self.scope)


class TokenCache:
    """The tokens of this process. Each (token URL, client, scope) has its own lock, held only while
    its token is fetched: a token endpoint that hangs (until the request timeout) holds back the
    calls to its own system, never another's. A fetch that fails is not tried again for a while
    (1 s, doubling to a minute): a failing endpoint is not asked once per call."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._failures: dict[tuple[str, str, str], tuple[float, int, str]] = {}  # retry at, count, reason
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._lock = threading.Lock()  # guards the dictionaries, never held across a fetch

    def get(self, credentials: Credentials, timeout: float) -> str:
        """A valid access token, fetched only when none is cached or it is about to expire."""
        key = credentials.key
        token = self._cached(key)
        if token:
            return token
        with self._lock_of(key):
            token = self._cached(key)  # fetched by another thread while this one waited
            if token:
                return token
            self._refuse_while_backing_off(key)
            try:
                token, lifetime = self._fetch(credentials, timeout)
            except TokenError as exc:
                self._failed(key, str(exc))
                raise
            with self._lock:
                self._tokens[key] = (token, time.monotonic() + max(lifetime - EXPIRY_MARGIN_SECONDS, 0))
                self._failures.pop(key, None)
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
            self._failures.clear()

    def _cached(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            cached = self._tokens.get(key)
        return cached[0] if cached and cached[1] > time.monotonic() else None

    def _lock_of(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def _refuse_while_backing_off(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            failure = self._failures.get(key)
        if failure and failure[0] > time.monotonic():
            raise TokenError(f"{failure[2]} (failed {failure[1]} times in a row; not tried again for "
                             f"{failure[0] - time.monotonic():.0f} s)")

    def _failed(self, key: tuple[str, str, str], reason: str) -> None:
        with self._lock:
            count = self._failures.get(key, (0.0, 0, ""))[1] + 1
            pause = min(2.0 ** (count - 1), MAX_FAILURE_PAUSE_SECONDS)
            self._failures[key] = (time.monotonic() + pause, count, reason)

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
