"""Fixtures of the façade tests: a signed raw HTTP client and a fresh container."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from facade_raw import Raw


@pytest.fixture
def raw(shared_server) -> Iterator[Raw]:
    client = Raw(shared_server)
    yield client
    client.close()


@pytest.fixture
def container(raw: Raw) -> str:
    return raw.create_container()
