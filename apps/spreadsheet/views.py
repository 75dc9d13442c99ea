"""The spreadsheet pages of the console: upload → dry run → confirm, and the download.

The uploaded file is kept on the server, under var/spreadsheet-uploads/<random token>.xlsx,
and the token, file name and SHA-256 go into the operator's session. A browser cannot send
a file again without the operator picking it again, and a hidden field would have to carry
up to SPREADSHEET_MAX_BYTES back and forth; a server-side copy costs one file per pending
upload. The confirm applies that same file (its hash is checked against the session) and
only if the plan made now has the fingerprint of the dry run shown (loader.PlanChanged
otherwise: someone changed the configuration meanwhile). Files older than a day are removed
at the next upload. Several web servers need var/ shared, or sticky sessions.

Progress: the dry run page is a streaming response. Its top is sent at once with a progress
bar; the reader and planner are generators of progress events, each sent as a one-line
script that moves the bar; the result follows when the plan is made. No job queue, no
polling, and it works behind any WSGI server that streams (runserver and gunicorn do).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Iterator

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.spreadsheet import exporter, loader
from apps.spreadsheet.reader import WorkbookRefused, check_size

SESSION_KEY = "spreadsheet_uploads"
KEEP_SECONDS = 24 * 3600
PENDING_UPLOADS = 5  # per session
PREVIEW_ROWS = 2000  # rows listed on the page; counts always cover every row
PREVIEW_PROBLEMS = 500
RESULT_MARKER = "<!--dry-run-result-->"
VIEW_PERMISSIONS = ["catalog.view_jobdefinition", "scheduling.view_schedule"]
APPLY_PERMISSIONS = ["catalog.load_workbook"]


class UploadForm(forms.Form):
    workbook = forms.FileField(label="Workbook (.xlsx)")


def can_apply(user) -> bool:
    return user.has_perms(APPLY_PERMISSIONS)


def _require_view(request: HttpRequest) -> None:
    if not request.user.has_perms(VIEW_PERMISSIONS):
        raise PermissionDenied


def upload_dir() -> Path:
    return Path(settings.VAR_DIR) / "spreadsheet-uploads"


def _context(request: HttpRequest, title: str, **more) -> dict:
    return {**admin.site.each_context(request), "title": title, "can_apply": can_apply(request.user),
            "max_bytes": settings.SPREADSHEET_MAX_BYTES, "max_rows": settings.SPREADSHEET_MAX_ROWS, **more}


def upload(request: HttpRequest) -> HttpResponse:
    """The form; a valid POST keeps the file and sends the browser to its dry run."""
    _require_view(request)
    form = UploadForm(request.POST or None, request.FILES or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            token = _keep(request, form.cleaned_data["workbook"])
        except WorkbookRefused as exc:
            error = str(exc)
        else:
            return redirect(reverse("admin:spreadsheet_preview", args=[token]))
    context = _context(request, "Batch schedule spreadsheet", form=form, error=error)
    return TemplateResponse(request, "admin/spreadsheet/upload.html", context, status=400 if error else 200)


def _keep(request: HttpRequest, uploaded) -> str:
    check_size(uploaded.size)
    directory = upload_dir()
    directory.mkdir(parents=True, exist_ok=True)
    _forget_old(directory)
    token = secrets.token_urlsafe(16)
    digest = hashlib.sha256()
    with open(directory / f"{token}.xlsx", "wb") as target:
        for chunk in uploaded.chunks():
            digest.update(chunk)
            target.write(chunk)
    uploads = request.session.get(SESSION_KEY, {})
    uploads[token] = {"name": Path(uploaded.name).name, "size": uploaded.size, "sha256": digest.hexdigest()}
    for old in list(uploads)[:-PENDING_UPLOADS]:  # an operator's older dry runs lapse
        uploads.pop(old)
        (directory / f"{old}.xlsx").unlink(missing_ok=True)
    request.session[SESSION_KEY] = uploads
    return token


def _forget_old(directory: Path) -> None:
    limit = time.time() - KEEP_SECONDS
    for path in directory.glob("*.xlsx"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
        except FileNotFoundError:
            pass


def _uploaded(request: HttpRequest, token: str) -> tuple[dict, bytes]:
    """The session's record of an upload and the file's bytes, checked against its hash."""
    upload = request.session.get(SESSION_KEY, {}).get(token)
    path = upload_dir() / f"{token}.xlsx"
    if upload is None or not path.is_file():
        raise Http404("This upload is unknown or has expired: upload the workbook again.")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != upload["sha256"]:
        raise Http404("The stored upload does not match what was uploaded: upload the workbook again.")
    return upload, data


def preview(request: HttpRequest, token: str) -> StreamingHttpResponse:
    """The dry run, streamed: progress while the workbook is read and checked, then the plan."""
    _require_view(request)
    upload, data = _uploaded(request, token)
    get_token(request)  # the confirm form's CSRF cookie must be set before the body streams
    context = _context(request, f"Dry run of {upload['name']}", upload=upload, token=token)
    page = render_to_string("admin/spreadsheet/preview.html", context, request)
    head, tail = page.split(RESULT_MARKER)
    response = StreamingHttpResponse(_stream(request, context, data, head, tail),
                                     content_type="text/html; charset=utf-8")
    response["X-Accel-Buffering"] = "no"  # nginx: pass the chunks on as they come
    response["Cache-Control"] = "no-store"
    return response


def _stream(request: HttpRequest, context: dict, data: bytes, head: str, tail: str) -> Iterator[str]:
    yield head
    started = time.monotonic()
    steps = loader.dry_run_steps(data)
    plan, refused, current, stage_started, previous = None, "", "", started, started
    try:
        while True:
            stage, done, total = next(steps)
            now = time.monotonic()
            if stage != current:  # a stage began when the previous one reported last
                current, stage_started = stage, previous
            rate, previous = done / max(now - stage_started, 1e-3), now
            yield f"<script>bdProgress({json.dumps(stage)}, {done}, {json.dumps(total)}, {rate:.0f})</script>\n"
    except StopIteration as finished:
        plan = finished.value
    except WorkbookRefused as exc:
        refused = str(exc)
    yield render_to_string("admin/spreadsheet/_result.html", {
        **context, "plan": plan, "refused": refused, "seconds": time.monotonic() - started,
        **(_plan_context(plan) if plan else {}),
    }, request)
    yield tail


def _plan_context(plan: loader.Plan) -> dict:
    order = {loader.ERROR: 0, loader.CREATE: 1, loader.UPDATE: 2, loader.UNCHANGED: 3}
    rows = sorted(plan.rows, key=lambda row: order[row.action])
    return {"counts": plan.counts(), "totals": plan.totals(), "rows": rows[:PREVIEW_ROWS],
            "rows_left_out": max(len(rows) - PREVIEW_ROWS, 0), "problems": plan.problems[:PREVIEW_PROBLEMS],
            "problems_left_out": max(len(plan.problems) - PREVIEW_PROBLEMS, 0), "fingerprint": plan.fingerprint(),
            "actions": loader.ACTIONS}


@require_POST
def apply(request: HttpRequest, token: str) -> HttpResponse:
    """Apply the previewed workbook: the same file, and only if the plan is still the one shown."""
    _require_view(request)
    if not can_apply(request.user):
        raise PermissionDenied
    upload, data = _uploaded(request, token)
    try:
        plan = loader.load(data, expect=request.POST.get("fingerprint", ""), actor=request.user.get_username(),
                           source=upload["name"])
    except (loader.PlanChanged, WorkbookRefused) as exc:
        messages.error(request, str(exc))
        return redirect(reverse("admin:spreadsheet_preview", args=[token]))
    if not plan.applied:
        messages.error(request, f"{len(plan.problems)} problem(s): nothing was written.")
        return redirect(reverse("admin:spreadsheet_preview", args=[token]))
    _discard(request, token)
    messages.success(request, f"Applied {upload['name']}: {plan.writes} row(s) written ({plan.summary()}).")
    return redirect(reverse("admin:spreadsheet_upload"))


def _discard(request: HttpRequest, token: str) -> None:
    uploads = request.session.get(SESSION_KEY, {})
    uploads.pop(token, None)
    request.session[SESSION_KEY] = uploads
    (upload_dir() / f"{token}.xlsx").unlink(missing_ok=True)


def download(request: HttpRequest) -> HttpResponse:
    """The current configuration as a workbook in the upload layout (no credentials)."""
    _require_view(request)
    response = HttpResponse(exporter.export_bytes(), content_type=exporter.CONTENT_TYPE)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="batch_schedule_{stamp}.xlsx"'
    return response
