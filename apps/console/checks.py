"""Django system checks for settings that cannot be right in production (outside DEBUG)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register

DEFAULT_SECRET_KEY = "dev-only-insecure-key-change-me"


@register()
def secret_key_is_set(app_configs, **kwargs) -> list[Warning]:
    if settings.DEBUG or settings.SECRET_KEY != DEFAULT_SECRET_KEY:
        return []
    return [Warning(
        "SECRET_KEY is the development default: sessions, tokens and the encryption of job types' client "
        "secrets are only as safe as a key everyone can read.",
        hint="Set SECRET_KEY to a long random value (keep the old one in SECRET_KEY_FALLBACKS while secrets "
             "stored under it are re-saved).",
        id="batchdesk.W001",
    )]


@register()
def oauth_transport_is_secure(app_configs, **kwargs) -> list[Warning]:
    if settings.DEBUG or not settings.OAUTH_ALLOW_INSECURE_TRANSPORT:
        return []
    return [Warning(
        "OAUTH_ALLOW_INSECURE_TRANSPORT is on: client secrets and bearer tokens may travel over plain http://.",
        hint="Use https:// token URLs and endpoints and leave OAUTH_ALLOW_INSECURE_TRANSPORT unset; it is meant "
             "for the bundled external system on loopback (make run) and the tests.",
        id="batchdesk.W002",
    )]
