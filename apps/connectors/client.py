"""The one seam to external systems: the POM Generic ReST calls of SPEC §3.

Every call sends `Authorization: Bearer <token>` and JSON, refetches the token once on a
401, and raises CallFailed with a reason that names the call and never a secret.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.utils import timezone
from requests.adapters import HTTPAdapter

from apps.connectors.oauth import Credentials, TokenError, tokens

RESPONSE_EXCERPT = 2000


class CallFailed(Exception):
    """A call that did not succeed. `transient` failures may be retried (timeouts, 5xx, bad JSON)."""

    def __init__(self, reason: str, *, transient: bool, status_code: int | None = None, body: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.status_code = status_code
        self.body = body[:RESPONSE_EXCERPT]


@dataclass(frozen=True)
class Endpoint:
    """A job type as seen from one application: its URL and scope may be configured per application."""

    name: str
    url: str
    scope: str
    paths: dict[str, str]
    timeout: float
    poll_interval: float
    credentials: Credentials

    def path(self, call: str) -> str:
        return self.paths.get(call, "")

    def defines(self, call: str) -> bool:
        return bool(self.path(call))


HEADERS = {**requests.utils.default_headers(), "Accept": "application/json"}


class _System:
    """One external system as this process reaches it: a keep-alive session shared by the threads,
    the environment's proxy and CA settings for it, and its URLs, each checked once.

    It also remembers whether the system answers. After NO_ANSWER_LIMIT calls in a row that got no
    answer (a timeout, a refused connection), its calls fail at once for a pause (5 s, doubling to
    a minute), then one call tries again: a hung system costs its callers seconds, not a thread
    each for its whole timeout, and the other systems' calls never queue behind it."""

    def __init__(self, base_url: str) -> None:
        self.name = base_url
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.settings = self.session.merge_environment_settings(base_url, {}, None, None, None)
        self.urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._unanswered = 0
        self._pauses = 0
        self._paused_until = 0.0
        self._reason = ""

    def refuse_while_paused(self, call: str) -> None:
        with self._lock:
            left = self._paused_until - time.monotonic()
            if left > 0:
                raise CallFailed(f"{call}: {self.name} is not answering ({self._reason}); calls paused for another "
                                 f"{left:.0f} s", transient=True)

    def no_answer(self, reason: str) -> None:
        with self._lock:
            self._unanswered += 1
            self._reason = reason
            if self._unanswered >= NO_ANSWER_LIMIT:
                pause = min(NO_ANSWER_PAUSE_SECONDS * 2 ** self._pauses, MAX_NO_ANSWER_PAUSE_SECONDS)
                self._pauses += 1
                self._unanswered = NO_ANSWER_LIMIT - 1  # after the pause, one more failure pauses again
                self._paused_until = time.monotonic() + pause

    def answered(self) -> None:
        with self._lock:
            self._unanswered = self._pauses = 0
            self._paused_until = 0.0

    def prepare(self, method: str, url: str, token: str, body: dict | None,
                query: dict | None) -> requests.PreparedRequest:
        """What PreparedRequest.prepare makes, less its work that is the same on every call: the
        URL is parsed and normalised once, and only the query is encoded each time."""
        base = self.urls.get(url)
        if base is None:
            probe = requests.PreparedRequest()
            probe.prepare_url(url, None)
            base = self.urls[url] = probe.url
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        prepared.url = f"{base}{'&' if '?' in base else '?'}{urlencode(query)}" if query else base
        prepared.prepare_headers({**HEADERS, "Authorization": f"Bearer {token}"})
        prepared.prepare_body(None, None, body)
        prepared.prepare_cookies(self.session.cookies)
        return prepared


_systems: dict[str, _System] = {}
_systems_lock = threading.Lock()
# A system that leaves this many calls in a row unanswered is paused (see _System).
NO_ANSWER_LIMIT = 2
NO_ANSWER_PAUSE_SECONDS = 5.0
MAX_NO_ANSWER_PAUSE_SECONDS = 60.0


def forget_systems() -> None:
    """Drop every session and what is known of each system (tests start from nothing)."""
    with _systems_lock:
        _systems.clear()


def system_for(base_url: str) -> _System:
    """The one _System per base URL of this process."""
    with _systems_lock:
        system = _systems.get(base_url)
        if system is None:
            system = _systems[base_url] = _System(base_url)
        return system


def _refuse_insecure(url: str) -> None:
    if url.startswith("http://") and not settings.OAUTH_ALLOW_INSECURE_TRANSPORT:
        raise CallFailed(
            f"Refusing plain http:// URL {url}: use https, or set OAUTH_ALLOW_INSECURE_TRANSPORT=true.",
            transient=False,
        )


def request(endpoint: Endpoint, call: str, method: str, *, body: dict | None = None,
            query: dict | None = None, expect_json: bool = True) -> Any:
    """Make one contract call; returns the parsed JSON object (or the text when `expect_json` is False)."""
    response = _send(endpoint, call, method, body=body, query=query)
    if not 200 <= response.status_code < 300:
        raise CallFailed(
            f"{call}: HTTP {response.status_code} from {response.url}",
            transient=response.status_code >= 500 or response.status_code == 429,
            status_code=response.status_code,
            body=response.text,
        )
    if not expect_json:
        return response.text
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CallFailed(f"{call}: the answer from {response.url} is not a JSON object", transient=True,
                         status_code=response.status_code, body=response.text)
    return data


def _send(endpoint: Endpoint, call: str, method: str, *, body: dict | None = None,
          query: dict | None = None) -> requests.Response:
    """Send with a bearer token; on a 401, forget the token and try once more with a new one."""
    url = endpoint.url.rstrip("/") + endpoint.path(call)
    _refuse_insecure(url)
    _refuse_insecure(endpoint.credentials.token_url)
    system = system_for(endpoint.url)
    system.refuse_while_paused(call)
    for attempt in (1, 2):
        try:
            token = tokens.get(endpoint.credentials, endpoint.timeout)
        except TokenError as exc:
            raise CallFailed(f"{call}: {exc}", transient=True) from None
        # The lean path: Session.request merges session state and looks up proxies, CA bundles
        # and ~/.netrc in the environment on every call, which made a Status call cost about
        # twice the CPU (DESIGN.md: the client's own cost sets the ceiling; bench/poll_scale.py).
        # Session.send keeps keep-alive, cookies, redirects and the adapter that `responses` mocks.
        try:
            prepared = system.prepare(method, url, token, body, query)
            response = system.session.send(prepared, timeout=endpoint.timeout, **system.settings)
        except requests.Timeout:
            system.no_answer(f"no answer within {endpoint.timeout:g}s")
            raise CallFailed(f"{call}: no answer from {url} within {endpoint.timeout:g}s", transient=True) from None
        except requests.ConnectionError as exc:
            system.no_answer(f"cannot connect: {_root_cause(exc)}")
            raise CallFailed(f"{call}: cannot connect to {url}: {_root_cause(exc)}", transient=True) from None
        except requests.RequestException as exc:
            raise CallFailed(f"{call}: {type(exc).__name__}: {exc}", transient=True) from None
        system.answered()
        if response.status_code == 401 and attempt == 1:
            tokens.invalidate(endpoint.credentials, token)
            continue
        return response
    return response


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ or exc.__context__:
        exc = exc.__cause__ or exc.__context__
    return str(exc) or type(exc).__name__


@dataclass
class CheckResult:
    up: bool
    status_code: int | None
    checked_at: datetime
    error: str


def system_check(endpoint: Endpoint) -> CheckResult:
    """POM's "Validation": 200 or 204 from check_path means up; anything else, or no answer, down."""
    now = timezone.now()
    if not endpoint.defines("check"):
        return CheckResult(False, None, now, f"No system check path is defined for job type {endpoint.name}.")
    try:
        response = _send(endpoint, "check", "GET")
    except CallFailed as exc:
        return CheckResult(False, exc.status_code, now, exc.reason)
    if response.status_code in (200, 204):
        return CheckResult(True, response.status_code, now, "")
    return CheckResult(False, response.status_code, now, f"check: HTTP {response.status_code} from {response.url}")


def describe(data: Any) -> str:
    """A value from an answer (executionInfo, executionId) as stored text, whatever JSON type the
    system sent. A NUL character, which PostgreSQL text refuses, becomes U+FFFD."""
    if data is None:
        return ""
    text = data if isinstance(data, str) else json.dumps(data, sort_keys=True)
    return text.replace("\x00", "\ufffd")
