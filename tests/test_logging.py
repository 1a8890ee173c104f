"""What the ``durable_streams`` logger records: retries (quiet at first, WARNING when they
go on), and never a credential, in headers or in the query string."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

import durable_streams as ds
from durable_streams.testing import local_server
from injection import inject_status

SECRET_PARAM = "s3cr3t-param"
SECRET_HEADER = "s3cr3t-header"
FAST = ds.RetryPolicy(max_retries=6, initial_delay=0.001, max_delay=0.005)


@pytest.fixture(scope="module")
def faulty() -> Iterator[str]:
    with local_server(fault_injection=True) as url:
        yield url


def test_retries_are_logged_without_credentials(
    faulty: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"/log/{uuid.uuid4().hex}"
    url = f"{faulty}{path}"
    with ds.DurableStream.create(url, content_type="application/json") as handle:
        handle.append({"n": 1})
    inject_status(faulty, path, status=503, count=4, method="GET")
    caplog.set_level(logging.INFO, logger="durable_streams")
    with ds.stream(
        url,
        params={"token": SECRET_PARAM},
        headers={"Authorization": f"Bearer {SECRET_HEADER}"},
        retry=FAST,
    ) as res:
        assert res.read_json() == [{"n": 1}]
    retries = [r for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.INFO] * 2 + [logging.WARNING] * 2
    assert all(path in r.getMessage() and "503" in r.getMessage() for r in retries)
    for record in caplog.records:
        text = record.getMessage()
        assert SECRET_PARAM not in text and SECRET_HEADER not in text and "token=" not in text


def test_handle_requests_log_their_retries(faulty: str, caplog: pytest.LogCaptureFixture) -> None:
    path = f"/log/{uuid.uuid4().hex}"
    url = f"{faulty}{path}"
    with ds.DurableStream.create(url, content_type="application/json", retry=FAST) as handle:
        inject_status(faulty, path, status=503, count=1, method="HEAD")
        caplog.set_level(logging.INFO, logger="durable_streams")
        assert handle.head().offset is not None
    (record,) = [r for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert record.getMessage().startswith(f"HEAD {url} failed (attempt 1): status 503")


def test_a_header_that_cannot_be_sent_is_neither_retried_nor_logged(
    faulty: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{faulty}/log/{uuid.uuid4().hex}"
    ds.DurableStream.create(url, content_type="application/json").close()
    caplog.set_level(logging.DEBUG, logger="durable_streams")
    # A token read from a file, newline and all, by a callable evaluated per request.
    headers = {"Authorization": lambda: f"Bearer {SECRET_HEADER}\n"}
    with (
        ds.DurableStream(url, headers=headers, retry=FAST) as handle,
        pytest.raises(ds.UsageError) as caught,
    ):
        handle.append({"n": 1})
    assert SECRET_HEADER not in str(caught.value)
    with pytest.raises(ds.UsageError), ds.stream(url, headers=headers, retry=FAST) as res:
        res.read_json()
    assert not [r for r in caplog.records if SECRET_HEADER in r.getMessage()]
    assert not [r for r in caplog.records if "failed (attempt" in r.getMessage()]
