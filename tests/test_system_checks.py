"""System checks warn about settings that cannot be right outside DEBUG."""

from __future__ import annotations

from django.core import checks


def warning_ids() -> set[str]:
    return {message.id for message in checks.run_checks() if message.id and message.id.startswith("batchdesk.")}


def test_the_default_secret_key_is_reported_outside_debug(settings):
    settings.DEBUG, settings.SECRET_KEY, settings.OAUTH_ALLOW_INSECURE_TRANSPORT = False, "dev-only-insecure-key-change-me", False
    assert warning_ids() == {"batchdesk.W001"}
    settings.SECRET_KEY = "a-long-random-production-value-0123456789"
    assert warning_ids() == set()
    settings.DEBUG, settings.SECRET_KEY = True, "dev-only-insecure-key-change-me"
    assert warning_ids() == set()


def test_insecure_oauth_transport_is_reported_outside_debug(settings):
    settings.SECRET_KEY = "a-long-random-production-value-0123456789"
    settings.DEBUG, settings.OAUTH_ALLOW_INSECURE_TRANSPORT = False, True
    assert warning_ids() == {"batchdesk.W002"}
    settings.DEBUG = True
    assert warning_ids() == set()
