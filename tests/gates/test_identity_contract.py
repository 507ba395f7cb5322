"""The pieces the `identity` scenario stands on, without a client: token calls named in the
contract, the target option's validation, and the OAuth settings a step hands its client."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.contract.model import summarize_calls
from harness.contract.proxy import Call, RecordingProxy
from harness.contract.record import _through
from harness.drivers.base import StepContext
from harness.drivers.common import client_env
from harness.scenario import TargetSpec
from harness.targets.base import Endpoint

TENANT = "6d3c1a2e-5b4f-4c8e-9a71-0f2b3c4d5e6f"


def _call(method: str, path: str, query: str = "", **headers: str) -> Call:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    return Call(method, path, "127.0.0.1:1", pairs, headers, 200, service="identity")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "operation", "shape"),
    [
        (_call("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration"),
         "OIDC Discovery v2.0", "/{tenant}/v2.0/.well-known/openid-configuration"),
        (_call("GET", f"/{TENANT}/.well-known/openid-configuration"),
         "OIDC Discovery v1", "/{tenant}/.well-known/openid-configuration"),
        (_call("GET", f"/{TENANT}/discovery/v2.0/keys"), "JWKS", "/{tenant}/discovery/v2.0/keys"),
        (_call("GET", "/common/discovery/instance", "api-version=1.1"),
         "Instance Discovery", "/{tenant}/discovery/instance"),
        (_call("POST", f"/{TENANT}/oauth2/v2.0/token"),
         "Token: client credentials v2.0", "/{tenant}/oauth2/v2.0/token"),
        (_call("POST", f"/{TENANT}/oauth2/token"),
         "Token: client credentials v1", "/{tenant}/oauth2/token"),
        (_call("GET", "/metadata/identity/oauth2/token", "api-version=2018-02-01", metadata="true"),
         "Token: managed identity (IMDS)", "/metadata/identity/oauth2/token"),
        (_call("GET", "/msi/token", "api-version=2019-08-01", **{"x-identity-header": "h"}),
         "Token: managed identity (App Service)", "/msi/token"),
        (_call("POST", "/msi/legacy"), "Token: managed identity (MSI_ENDPOINT)", "/msi/legacy"),
    ],
)  # fmt: skip
def test_token_calls_are_named_as_entra_documents_them(
    call: Call, operation: str, shape: str
) -> None:
    [op] = summarize_calls([call], "devstoreaccount1", "identity")
    assert (op.operation, op.path) == (operation, shape)


def test_token_call_shape_keeps_identity_headers_and_versions() -> None:
    call = _call(
        "GET", "/msi/token", "api-version=2019-08-01&resource=https://storage.azure.com",
        **{"x-identity-header": "secret-value", "user-agent": "azsdk-go", "x-client-sku": "MSAL"},
    )  # fmt: skip
    [op] = summarize_calls([call])
    assert op.headers == ["x-client-sku", "x-identity-header"]  # names, never the values
    assert op.params == ["api-version", "resource"]
    assert op.values == {"?api-version": ["2019-08-01"], "?resource": ["https://storage.azure.com"]}
    # a Blob call is unchanged: path style, no api-version enum
    blob = Call("GET", "/devstoreaccount1/ct/b", "127.0.0.1:1", [("api-version", "x")], {}, 200)
    [op] = summarize_calls([blob], "devstoreaccount1")
    assert (op.operation, op.values) == ("Get Blob", {})


def test_identity_option_is_a_reference_boolean() -> None:
    assert TargetSpec(kind="reference", options={"identity": True}).options["identity"] is True
    with pytest.raises(ValidationError, match=r"options\.identity: must be true or false"):
        TargetSpec(kind="reference", options={"identity": "yes"})
    with pytest.raises(ValidationError, match="only the reference target serves bearer tokens"):
        TargetSpec(kind="azurite", options={"identity": True})


def _ctx(endpoint: Endpoint, operation: str = "list", **options: object) -> StepContext:
    return StepContext(
        scenario="identity", step="s", operation=operation, endpoint=endpoint, container="ct",
        workdir=Path("/nonexistent"), options=dict(options),
    )  # fmt: skip


def test_oauth_steps_get_the_token_service_settings_and_the_recording_proxy() -> None:
    authority = "https://127.0.0.1:4000"
    env = {"IDENTITY_ENDPOINT": f"{authority}/msi/token", "AZURE_AUTHORITY_HOST": authority}
    endpoint = Endpoint("reference", "devstoreaccount1", "https://127.0.0.1:5000/devstoreaccount1")
    endpoint.extra["identity"] = {"authority": authority, "env": env}
    # the step's own env wins; without auth: oauth the service's settings stay out
    step_env = {"AZURE_AUTHORITY_HOST": "https://other", "AZCOPY_AUTO_LOGIN_TYPE": "MSI"}
    assert client_env(_ctx(endpoint, auth="oauth", env=step_env)) == {
        "IDENTITY_ENDPOINT": f"{authority}/msi/token",
        "AZURE_AUTHORITY_HOST": "https://other",
        "AZCOPY_AUTO_LOGIN_TYPE": "MSI",
    }
    assert client_env(_ctx(endpoint, env=step_env)) == step_env
    # recorded runs point the clients at the recording proxy in front of the token service
    proxy = RecordingProxy(authority, service="identity")
    proxy.port = 4001
    through = _through(endpoint, proxy)
    assert through.extra["identity"]["env"] == {
        "IDENTITY_ENDPOINT": "http://127.0.0.1:4001/msi/token",
        "AZURE_AUTHORITY_HOST": "http://127.0.0.1:4001",
    }
    assert endpoint.extra["identity"]["env"] == env  # the target's own endpoint is untouched


def test_azcopy_uploads_with_a_token_get_their_container_from_the_runner() -> None:
    from harness.drivers.azcopy import AzCopyDriver
    from harness.lab_proxy import with_proxy

    endpoint = with_proxy(
        Endpoint("reference", "devstoreaccount1", "https://127.0.0.1:5000/devstoreaccount1"),
        "http://127.0.0.1:6000",
    )
    azcopy = AzCopyDriver()
    assert azcopy.needs_container(_ctx(endpoint, "upload", auth="oauth"))
    assert not azcopy.needs_container(_ctx(endpoint, "upload"))  # by name, with a SAS
    assert not azcopy.needs_container(_ctx(endpoint, "copy", auth="oauth"))
