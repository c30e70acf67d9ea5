from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.object_servers import GcsServer, S3Server, gcs_server, s3_server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsServer]:
    with gcs_server() as server:
        yield server
