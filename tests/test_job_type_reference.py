"""A job's type is a real reference: checked at save by every writer, carried along by a rename,
and a custom type that jobs use cannot be deleted. Built-in kinds are accepted in any case."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError

from apps.catalog.models import JobDefinition, JobKind, JobType
from tests.conftest import token_client
from apps.spreadsheet import loader
from tests.spreadsheets import Sheets


@pytest.fixture
def mocktype(db) -> JobType:
    return JobType.objects.create(name="MOCKTYPE", url="https://ext.example.com", start_path="/s", status_path="/t")


def test_a_rename_carries_the_jobs_of_the_type_along(make_job, mocktype):
    job = make_job("extract", job_type="MOCKTYPE", command="")
    mocktype.name = "EXTSYS"
    mocktype.save()
    job.refresh_from_db()
    assert job.job_type == "EXTSYS"
    assert list(JobDefinition.objects.of_type("EXTSYS")) == [job]


def test_a_type_in_use_cannot_be_deleted(make_job, mocktype):
    make_job("extract", job_type="MOCKTYPE", command="")
    with pytest.raises(ProtectedError):
        mocktype.delete()


def test_the_api_refuses_to_delete_a_type_in_use_naming_up_to_ten_jobs(make_job, mocktype, administrator):
    for i in range(12):
        make_job(f"job_{i:02d}", job_type="MOCKTYPE", command="")
    response = token_client(administrator).delete("/api/v1/job-types/MOCKTYPE")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "IN_USE"
    assert "job_00" in body["detail"] and "job_09" in body["detail"] and "job_10" not in body["detail"]
    assert "and 2 more" in body["detail"]
    assert JobType.objects.filter(name="MOCKTYPE").exists()


def test_an_unused_type_can_be_deleted(mocktype, administrator):
    assert token_client(administrator).delete("/api/v1/job-types/MOCKTYPE").status_code == 204


@pytest.mark.parametrize("written", ["exec", "Exec", "EXEC"])
def test_the_api_takes_a_built_in_kind_in_any_case_and_stores_it_upper_case(app, administrator, written):
    response = token_client(administrator).post(
        "/api/v1/jobs", {"name": "j", "application": "RMS", "job_type": written, "command": "true"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["job_type"] == "EXEC"
    assert JobDefinition.objects.get(name="j").kind == JobKind.EXEC


def test_the_api_refuses_an_unknown_job_type_by_name(app, administrator):
    response = token_client(administrator).post(
        "/api/v1/jobs", {"name": "j", "application": "RMS", "job_type": "NOPE", "command": "true"}, format="json")
    assert response.status_code == 400
    assert "Unknown job type 'NOPE'" in response.json()["fields"]["job_type"][0]


@pytest.mark.parametrize("name", ["Exec", "python", "DUMMY"])
def test_no_writer_accepts_a_custom_type_named_like_a_built_in_kind(db, administrator, name):
    with pytest.raises(ValidationError, match="is a built-in job type"):
        JobType(name=name, start_path="/s", status_path="/t").full_clean()
    response = token_client(administrator).post(
        "/api/v1/job-types", {"name": name, "start_path": "/s", "status_path": "/t"}, format="json")
    assert response.status_code == 400
    assert "is a built-in job type" in response.json()["detail"]


def test_the_spreadsheet_takes_a_built_in_kind_in_any_case(db):
    plan = loader.load(Sheets.base().set("Jobs", 3, "Job Type", "dummy").xlsx())
    assert plan.applied, plan.problems
    assert "DUMMY" in set(JobDefinition.objects.with_type_name().values_list("type_name", flat=True))


def test_the_admin_offers_the_types_as_one_choice_and_stores_the_kind(admin_client_logged, app, mocktype):
    form = {"name": "from_admin", "application": app.pk, "sequence": 0, "job_type": "MOCKTYPE", "command": "",
            "parameters": "", "enabled": "on", "max_retries": 0, "retry_backoff_seconds": 30, "timeout_seconds": 0,
            "concurrency": "forbid", "threshold_runtime_seconds": 0}
    response = admin_client_logged.post("/admin/catalog/jobdefinition/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    job = JobDefinition.objects.get(name="from_admin")
    assert (job.kind, job.custom_type) == (JobKind.CUSTOM, mocktype)
