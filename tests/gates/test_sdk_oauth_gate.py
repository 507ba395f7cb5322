"""SDK gate with Entra ID tokens from the lab token service, over https with the lab CA:
ClientSecretCredential, ManagedIdentityCredential (IMDS and App Service), DefaultAzureCredential
through the environment; upload_blob / list_blobs / download_blob, sync and aio; a user
delegation SAS used by a second client. No credential may reach 169.254.169.254."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import (
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from azure.identity.aio import ClientSecretCredential as AioClientSecretCredential
from azure.storage.blob import BlobClient, BlobServiceClient, generate_blob_sas
from azure.storage.blob.aio import BlobServiceClient as AioBlobServiceClient
from identity_fixtures import SCOPED_CONTAINER, BearerFacade

pytestmark = pytest.mark.sdk
MIB = 1024 * 1024
DATA = np.random.default_rng(12).bytes(3 * MIB + 17)  # several blocks at 1 MiB
BLOCKS = {"max_single_put_size": MIB, "max_block_size": MIB}


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every address a socket of this process connects to (the sync clients' transport)."""
    seen: list[Any] = []
    original = socket.socket.connect

    def record(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        if isinstance(address, tuple) and address[0] == "169.254.169.254":
            raise AssertionError("a credential tried the real IMDS address")
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", record)
    yield seen


def _round_trip(service: BlobServiceClient, container: str, name: str = "data/blob.bin") -> None:
    client = service.get_container_client(container)
    if not client.exists():
        client.create_container()
    client.upload_blob(name, DATA, overwrite=True, max_concurrency=4)
    assert name in [b.name for b in client.list_blobs(name_starts_with="data/")]
    assert client.download_blob(name, max_concurrency=4).readall() == DATA


def _service(facade: BearerFacade, credential: Any, **kw: Any) -> BlobServiceClient:
    return BlobServiceClient(
        facade.account_url, credential=credential, connection_verify=str(facade.ca_bundle),
        **BLOCKS, **kw,
    )  # fmt: skip


def _secret_credential(facade: BearerFacade, name: str, secret: str) -> ClientSecretCredential:
    lab = facade.identity
    return ClientSecretCredential(
        lab.tenant, lab.principal(name)[1], secret, authority=lab.authority,
        disable_instance_discovery=True, connection_verify=str(facade.ca_bundle),
    )  # fmt: skip


def test_client_secret_credential_sync(bearer_facade: BearerFacade, connects: list) -> None:
    credential = _secret_credential(bearer_facade, "writer", "lab-writer-secret")
    with _service(bearer_facade, credential) as service:
        _round_trip(service, "oauth-secret-sync")
    assert not any(a[0] == "169.254.169.254" for a in connects if isinstance(a, tuple))


def test_client_secret_credential_aio(bearer_facade: BearerFacade) -> None:
    lab = bearer_facade.identity

    async def run() -> None:
        credential = AioClientSecretCredential(
            lab.tenant, lab.principal("writer")[1], "lab-writer-secret", authority=lab.authority,
            disable_instance_discovery=True, connection_verify=str(bearer_facade.ca_bundle),
        )  # fmt: skip
        async with credential, AioBlobServiceClient(
            bearer_facade.account_url, credential=credential,
            connection_verify=str(bearer_facade.ca_bundle), **BLOCKS,
        ) as service:  # fmt: skip
            client = service.get_container_client("oauth-secret-aio")
            await client.create_container()
            await client.upload_blob("data/a.bin", DATA, max_concurrency=4)
            names = [b.name async for b in client.list_blobs()]
            assert names == ["data/a.bin"]
            blob = await client.download_blob("data/a.bin", max_concurrency=4)
            assert await blob.readall() == DATA

    asyncio.run(run())


def test_reader_can_read_but_not_write(bearer_facade: BearerFacade) -> None:
    with _service(
        bearer_facade, _secret_credential(bearer_facade, "writer", "lab-writer-secret")
    ) as w:
        _round_trip(w, "oauth-reader")
    with _service(
        bearer_facade, _secret_credential(bearer_facade, "reader", "lab-reader-secret")
    ) as r:
        client = r.get_container_client("oauth-reader")
        assert client.download_blob("data/blob.bin").readall() == DATA
        with pytest.raises(HttpResponseError) as info:
            client.upload_blob("data/nope.bin", b"x")
        assert info.value.error_code == "AuthorizationPermissionMismatch"


def test_managed_identity_imds_reaches_the_lab_not_169_254(
    bearer_facade: BearerFacade, monkeypatch: pytest.MonkeyPatch, connects: list
) -> None:
    lab = bearer_facade.identity
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", lab.authority)
    credential = ManagedIdentityCredential(connection_verify=str(bearer_facade.ca_bundle))
    with _service(bearer_facade, credential) as service:
        _round_trip(service, "oauth-imds")
    ports = {a[1] for a in connects if isinstance(a, tuple)}
    assert int(lab.authority.rsplit(":", 1)[1]) in ports  # the token came from the lab service
    assert not any(a[0] == "169.254.169.254" for a in connects if isinstance(a, tuple))


def test_managed_identity_app_service_user_assigned_is_scoped(
    bearer_facade: BearerFacade, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = bearer_facade.identity
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{lab.authority}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "lab-identity-header")
    credential = ManagedIdentityCredential(
        client_id=lab.principal("scoped")[1], connection_verify=str(bearer_facade.ca_bundle)
    )
    with _service(
        bearer_facade, _secret_credential(bearer_facade, "writer", "lab-writer-secret")
    ) as w:
        w.get_container_client(SCOPED_CONTAINER).exists() or w.create_container(SCOPED_CONTAINER)
    with _service(bearer_facade, credential) as service:
        _round_trip(service, SCOPED_CONTAINER, "data/from-app-service.bin")
        with pytest.raises(HttpResponseError) as info:
            service.get_container_client("oauth-elsewhere").create_container()
        assert info.value.error_code == "AuthorizationPermissionMismatch"


def test_default_azure_credential_from_the_environment(
    bearer_facade: BearerFacade, monkeypatch: pytest.MonkeyPatch, connects: list
) -> None:
    lab = bearer_facade.identity
    monkeypatch.setenv("AZURE_TENANT_ID", lab.tenant)
    monkeypatch.setenv("AZURE_CLIENT_ID", lab.principal("writer")[1])
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "lab-writer-secret")
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", lab.authority)
    credential = DefaultAzureCredential(
        disable_instance_discovery=True, connection_verify=str(bearer_facade.ca_bundle)
    )
    with _service(bearer_facade, credential) as service:
        _round_trip(service, "oauth-default")
    assert not any(a[0] == "169.254.169.254" for a in connects if isinstance(a, tuple))


def test_user_delegation_sas_used_by_a_second_client(bearer_facade: BearerFacade) -> None:
    now = datetime.now(UTC)
    credential = _secret_credential(bearer_facade, "writer", "lab-writer-secret")
    with _service(bearer_facade, credential) as service:
        _round_trip(service, "oauth-udsas")
        key = service.get_user_delegation_key(now - timedelta(minutes=1), now + timedelta(hours=1))
    assert key.signed_oid == bearer_facade.identity.principal("writer")[0]
    assert key.signed_tid == bearer_facade.identity.tenant
    sas = generate_blob_sas(
        bearer_facade.account, "oauth-udsas", "data/blob.bin", user_delegation_key=key,
        permission="r", expiry=now + timedelta(minutes=30),
    )  # fmt: skip
    url = f"{bearer_facade.account_url}/oauth-udsas/data/blob.bin?{sas}"
    with BlobClient.from_blob_url(url, connection_verify=str(bearer_facade.ca_bundle)) as reader:
        assert reader.download_blob().readall() == DATA
        with pytest.raises(HttpResponseError) as info:
            reader.upload_blob(b"x", overwrite=True)  # the SAS grants r only
        assert info.value.status_code == 403
    # a field changed after signing (a later key expiry) breaks the derived key
    later = (now + timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tampered = url.replace(
        f"ske={key.signed_expiry.replace(':', '%3A')}", f"ske={later.replace(':', '%3A')}"
    )
    assert tampered != url
    with BlobClient.from_blob_url(tampered, connection_verify=str(bearer_facade.ca_bundle)) as bad:
        with pytest.raises(HttpResponseError) as info:
            bad.download_blob().readall()
        assert info.value.error_code == "AuthenticationFailed"


def test_user_delegation_key_needs_a_bearer_token(bearer_facade: BearerFacade) -> None:
    now = datetime.now(UTC)
    with BlobServiceClient(
        bearer_facade.account_url, credential=bearer_facade.key,
        connection_verify=str(bearer_facade.ca_bundle),
    ) as service:  # fmt: skip
        with pytest.raises(HttpResponseError) as info:
            service.get_user_delegation_key(now, now + timedelta(hours=1))
        assert (info.value.status_code, info.value.error_code) == (403, "AuthenticationFailed")
    credential = _secret_credential(bearer_facade, "writer", "lab-writer-secret")
    with _service(bearer_facade, credential) as service:
        with pytest.raises(HttpResponseError) as info:
            service.get_user_delegation_key(now, now + timedelta(days=8))
        assert info.value.status_code == 400


class _StaleFirst:
    """A credential whose first token has expired (as a cached one would), then the real
    credential's: the SDK must answer the façade's 401 challenge by asking again for
    ``resource_id/.default`` in the challenged tenant, and retry."""

    def __init__(self, stale: str, real: ClientSecretCredential) -> None:
        self.stale, self.real = stale, real
        self.calls: list[tuple[tuple[str, ...], str | None]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.calls.append((scopes, kwargs.get("tenant_id")))
        if len(self.calls) == 1:
            return AccessToken(self.stale, int(time.time()) + 3600)  # claims to be fresh
        return self.real.get_token(*scopes, **kwargs)


def test_sdk_answers_the_bearer_challenge(bearer_facade: BearerFacade) -> None:
    lab = bearer_facade.identity
    stale = lab.mint("writer", exp=int(time.time()) - 900)
    credential = _StaleFirst(
        stale, _secret_credential(bearer_facade, "writer", "lab-writer-secret")
    )
    with _service(bearer_facade, credential) as service:
        service.create_container("oauth-challenge")
    assert len(credential.calls) == 2
    assert credential.calls[1] == (("https://storage.azure.com/.default",), lab.tenant)
