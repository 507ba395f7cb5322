"""Gate fixtures: the endpoint the real clients are pointed at, and the gate datasets.

The gates run against the reference façade (the ``server`` fixture). ``LAB_GATE_BLOB_URL`` (an
account URL, with ``LAB_GATE_KEY``) points the same gates at another running endpoint, such as
Azurite, to compare the two.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from harness.datasets import Dataset, generate_dataset
from harness.drivers.base import StepContext
from harness.targets.base import Endpoint
from reference_server.config import DEV_KEY

MIB = 1024 * 1024


@pytest.fixture
def lab_endpoint(request: pytest.FixtureRequest) -> Endpoint:
    """The reference façade of this test, or ``LAB_GATE_BLOB_URL`` (e.g. a running Azurite)."""
    if url := os.environ.get("LAB_GATE_BLOB_URL"):
        account = url.rstrip("/").rsplit("/", 1)[-1]
        return Endpoint(
            target="url", account=account, blob_url=url, key=os.environ.get("LAB_GATE_KEY", DEV_KEY)
        )
    server = request.getfixturevalue("server")
    return Endpoint(
        target="reference", account=server.account, blob_url=server.account_url, key=server.key
    )


@pytest.fixture
def container_name(request: pytest.FixtureRequest) -> str:
    """A container name of this test alone (3-63 chars of [a-z0-9-])."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def gate_step(
    request: pytest.FixtureRequest, lab_endpoint: Endpoint, container_name: str, tmp_path: Path
) -> Callable[..., StepContext]:
    """``gate_step(op, **fields)``: the StepContext of one driver step of this gate test, on its
    endpoint and container, in a fresh work directory; ``fields`` set or override the rest."""
    scenario = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    numbers = itertools.count(1)

    def make(op: str, **fields: Any) -> StepContext:
        fields = {
            "endpoint": lab_endpoint,
            "container": container_name,
            "workdir": tmp_path / "steps" / f"{next(numbers):02d}-{op}",
            "timeout_s": 300,
            **fields,
        }
        return StepContext(scenario=scenario, step=op, operation=op, **fields)

    return make


@pytest.fixture
def service(lab_endpoint: Endpoint) -> Iterator[BlobServiceClient]:
    with BlobServiceClient(lab_endpoint.blob_url, credential=lab_endpoint.key) as client:
        yield client


@pytest.fixture(scope="session")
def dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="session")
def small_and_large(dataset_cache: Path) -> Dataset:
    """Hundreds of small files in nested directories plus files larger than AzCopy's 8 MiB block."""
    spec = {
        "name": "small-and-large",
        "seed": 11,
        "files": [
            {
                "count": 300,
                "size_min": 1024,
                "size_max": 64 * 1024,
                "dir_depth": 2,
                "prefix": "small",
            },
            {"count": 2, "size_min": 20 * MIB, "size_max": 40 * MIB, "prefix": "large"},
        ],
    }
    return generate_dataset(spec, dataset_cache)


@pytest.fixture(scope="session")
def small_tree(dataset_cache: Path) -> Dataset:
    """A few dozen small files plus one file of several blocks (at 4 MiB blocks)."""
    spec = {
        "name": "small-tree",
        "seed": 5,
        "files": [
            {"count": 40, "size_min": 1, "size_max": 32 * 1024, "dir_depth": 2, "prefix": "tree"},
            {"count": 1, "size": 10 * MIB, "prefix": "big"},
        ],
    }
    return generate_dataset(spec, dataset_cache)
