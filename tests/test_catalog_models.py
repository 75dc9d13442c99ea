"""The catalog models' own rules, as every caller (admin, API, engine, spreadsheet loader) gets them."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog.models import JobDefinition, JobType

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["EXEC", "Exec", "python", "Dummy"])
def test_it_refuses_a_custom_job_type_named_like_a_built_in_one_in_any_case(name):
    with pytest.raises(ValidationError) as refused:
        JobType(name=name, start_path="/s", status_path="/t").full_clean()
    assert refused.value.message_dict["name"] == [f"{name} is a built-in job type: custom types need another name."]


def test_a_job_refers_to_its_custom_type_and_clean_makes_no_query(app):
    planned = JobType(name="EXTTYPE", start_path="/s", status_path="/t")  # not saved yet, as a workbook plans it
    job = JobDefinition(name="ext", application=app, job_type=planned)
    with CaptureQueriesContext(connection) as queries:
        job.clean()
        assert job.job_type == "EXTTYPE"
    assert queries.captured_queries == []


def test_it_looks_up_a_custom_job_type_when_no_names_are_given(app):
    JobType.objects.create(name="EXTTYPE", start_path="/s", status_path="/t")
    JobDefinition(name="ext", application=app, job_type="EXTTYPE").clean()
    with pytest.raises(ValidationError):
        JobDefinition(name="other", application=app, job_type="NOSUCHTYPE").clean()
