"""HTTP for the reference external system: an OAuth2 token endpoint and the SPEC §3 job calls.

Plain Django views speaking JSON. They are CSRF-exempt because their callers are programs
holding a bearer token (or client credentials), never a browser session."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable, Mapping
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.extsys import services
from apps.extsys.models import AccessToken, ExternalExecution
from apps.extsys.services import Refused

View = Callable[..., HttpResponse]


# --- OAuth2 client-credentials grant (RFC 6749 §4.4) -----------------------------------


@csrf_exempt
@never_cache  # RFC 6749 §5.1: token responses must not be cached
@require_POST
def token(request: HttpRequest) -> JsonResponse:
    if not _client_is_valid(*_client_credentials(request)):
        response = JsonResponse({"error": "invalid_client"}, status=401)
        response["WWW-Authenticate"] = 'Basic realm="extsys"'
        return response
    grant_type = request.POST.get("grant_type", "")
    if grant_type != "client_credentials":
        return JsonResponse({"error": "unsupported_grant_type" if grant_type else "invalid_request"}, status=400)
    scope = request.POST.get("scope", "")
    return JsonResponse({
        "access_token": AccessToken.objects.issue(scope),
        "token_type": "Bearer",
        "expires_in": settings.EXTSYS_TOKEN_TTL,
        "scope": scope,
    })


def _client_credentials(request: HttpRequest) -> tuple[str, str]:
    """From HTTP Basic when sent, else from the client_id/client_secret form fields."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return request.POST.get("client_id", ""), request.POST.get("client_secret", "")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except ValueError:  # bad base64 or bad UTF-8
        return "", ""
    # Compared as sent, not form-decoded as RFC 6749 §2.3.1 suggests: requests'
    # HTTPBasicAuth, which our own client uses, does not form-encode them.
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def _client_is_valid(client_id: str, secret: str) -> bool:
    # compare_digest on both, always, so the answer's timing reveals neither.
    id_ok = hmac.compare_digest(client_id.encode(), settings.EXTSYS_CLIENT_ID.encode())
    secret_ok = hmac.compare_digest(secret.encode(), settings.EXTSYS_CLIENT_SECRET.encode())
    return id_ok and secret_ok


# --- The job calls ---------------------------------------------------------------------


def job_call(method: str) -> Callable[[View], View]:
    """A SPEC §3 call: one HTTP method, a valid bearer token, and a Refused turned into JSON."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @require_http_methods([method])
        @wraps(view)
        def wrapped(request: HttpRequest) -> HttpResponse:
            if not AccessToken.objects.is_valid(_bearer_token(request)):
                body = {"error": "invalid_token", "message": "A valid bearer token is required."}
                response = JsonResponse(body, status=401)
                response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
                return response
            try:
                return view(request)
            except Refused as refused:
                return JsonResponse({"message": refused.message}, status=refused.status)

        return wrapped

    return decorate


@job_call("POST")
def start(request: HttpRequest) -> JsonResponse:
    return _execution_json(services.start(_json_body(request, services.START_FIELDS)))


@job_call("GET")
def status(request: HttpRequest) -> JsonResponse:
    return _execution_json(services.find(_query(request)))


@job_call("POST")
def restart(request: HttpRequest) -> JsonResponse:
    return _execution_json(services.restart(_json_body(request, services.RESTART_FIELDS)))


@job_call("POST")
def kill(request: HttpRequest) -> JsonResponse:
    return _execution_json(services.kill(_json_body(request, services.LOOKUP_FIELDS)))


@job_call("GET")
def log(request: HttpRequest) -> HttpResponse:
    execution = services.find(_query(request))
    return HttpResponse(execution.log(timezone.now()), content_type="text/plain; charset=utf-8")


@require_safe
def health(request: HttpRequest) -> HttpResponse:
    """The system check: open to all, since it says only that the system answers."""
    return HttpResponse(status=204)


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _execution_json(execution: ExternalExecution) -> JsonResponse:
    now = timezone.now()  # one instant, so that status and info agree
    return JsonResponse({
        "executionId": execution.execution_id,
        "status": execution.status(now),
        "executionInfo": execution.execution_info(now),
    })


def _json_body(request: HttpRequest, fields: tuple[str, ...]) -> dict[str, str]:
    """The request's JSON object, which must hold exactly `fields`, all strings."""
    try:
        body = json.loads(request.body)
    except ValueError as error:  # bad JSON or bad UTF-8
        raise Refused(400, f"Malformed JSON: {error}.") from None
    if not isinstance(body, dict):
        raise Refused(400, "Expected a JSON object.")
    unexpected = sorted(set(body) - set(fields))
    if unexpected:
        raise Refused(400, f"Unexpected fields: {', '.join(unexpected)}.")
    return _required(body, fields)


def _query(request: HttpRequest) -> dict[str, str]:
    return _required(request.GET, services.LOOKUP_FIELDS)


def _required(values: Mapping[str, object], fields: tuple[str, ...]) -> dict[str, str]:
    """`fields` from `values`, each a string and, except `parameters`, not blank."""
    missing = [name for name in fields if name not in values]
    if missing:
        raise Refused(400, f"Missing fields: {', '.join(missing)}.")
    wrong = [name for name in fields if not _is_given(name, values[name])]
    if wrong:
        raise Refused(400, f"Expected non-blank strings in: {', '.join(wrong)}.")
    return {name: values[name] for name in fields}


def _is_given(name: str, value: object) -> bool:
    # Parameters may be empty: a job with none is still a job.
    return isinstance(value, str) and (name == "parameters" or bool(value.strip()))
