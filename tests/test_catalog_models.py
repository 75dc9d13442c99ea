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


def test_it_checks_a_custom_job_type_against_the_names_given_without_a_query(app):
    job = JobDefinition(name="ext", application=app, job_type="EXTTYPE")
    with CaptureQueriesContext(connection) as queries:
        job.clean(custom_types={"EXTTYPE"})
        with pytest.raises(ValidationError) as refused:
            job.clean(custom_types={"OTHER"})
    assert queries.captured_queries == []
    assert list(refused.value.message_dict) == ["job_type"]


def test_it_looks_up_a_custom_job_type_when_no_names_are_given(app):
    JobType.objects.create(name="EXTTYPE", start_path="/s", status_path="/t")
    JobDefinition(name="ext", application=app, job_type="EXTTYPE").clean()
    with pytest.raises(ValidationError):
        JobDefinition(name="other", application=app, job_type="NOSUCHTYPE").clean()
