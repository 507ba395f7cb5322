"""The lab token service: its key ring, its configuration file, and its endpoints as the real
azure-identity credentials and plain HTTP clients see them."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential

from harness.identity.config import load_config
from harness.identity.keys import KeyRing
from harness.identity.lab import LabIdentity
from harness.scenario import ScenarioError

STORAGE = "https://storage.azure.com/.default"


# ---- key ring ----------------------------------------------------------------------------------


def test_rotation_publishes_before_signing_and_keeps_the_old_key_until_its_tokens_expire(
    tmp_path: Path,
) -> None:
    ring = KeyRing.load_or_create(tmp_path, max_token_lifetime_s=3600, now=1000)
    old = ring.signer(1000)
    new = ring.rotate(lead_s=300, now=2000)
    # published at once, signing only after the lead time
    assert {k["kid"] for k in ring.jwks(2000)["keys"]} == {old.kid, new.kid}
    assert ring.signer(2299).kid == old.kid and ring.signer(2300).kid == new.kid
    # the old key's last token (signed just before 2300) lives until 2300 + 3600
    assert {k["kid"] for k in ring.jwks(5899)["keys"]} == {old.kid, new.kid}
    assert [k["kid"] for k in ring.jwks(5900)["keys"]] == [new.kid]
    ring.prune(5900)
    assert not (tmp_path / f"{old.kid}.pem").exists()
    # another process loading the directory sees the same ring and signs verifiable tokens
    again = KeyRing.load_or_create(tmp_path, 3600)
    token = again.sign({"sub": "x"}, now=6000)
    assert jwt.get_unverified_header(token)["kid"] == new.kid
    assert jwt.decode(token, new.private.public_key(), algorithms=["RS256"])["sub"] == "x"


def test_config_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "tenant.yaml"
    path.write_text(
        "tenant: 6d3c1a2e-5b4f-4c8e-9a71-0f2b3c4d5e6f\n"
        "clients:\n"
        "  - client_id: not-a-guid\n"
        "    secret: s\n"
        "    object_id: 0a1b2c3d-0000-4000-8000-0000000000a1\n"
        "token_lifetime_s: 5\n"
    )
    with pytest.raises(ScenarioError) as info:
        load_config(path)
    problems = "\n".join(info.value.problems)
    assert "tenant.yaml:3: clients[0].client_id:" in problems
    assert (
        "tenant.yaml:6: token_lifetime_s: Input should be greater than or equal to 60" in problems
    )


# ---- endpoints -----------------------------------------------------------------------------------


def _get(lab: LabIdentity, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cafile=str(lab.ca_bundle))
    req = urllib.request.Request(lab.authority + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _verify(lab: LabIdentity, token: str) -> dict[str, Any]:
    """Verify a token the way a resource server does: JWKS from the discovery document."""
    _, doc = _get(lab, f"/{lab.tenant}/v2.0/.well-known/openid-configuration")
    _, keys = _get(lab, urllib.parse.urlsplit(doc["jwks_uri"]).path)
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in keys["keys"] if k["kid"] == kid)
    key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    return jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False})


def test_discovery_documents_v1_and_v2(lab_identity: LabIdentity) -> None:
    lab = lab_identity
    status, v2 = _get(lab, f"/{lab.tenant}/v2.0/.well-known/openid-configuration")
    assert status == 200
    assert v2["issuer"] == f"https://login.microsoftonline.com/{lab.tenant}/v2.0"
    assert v2["token_endpoint"] == f"{lab.authority}/{lab.tenant}/oauth2/v2.0/token"
    _, v1 = _get(lab, "/bloblab.onmicrosoft.com/.well-known/openid-configuration")
    assert v1["issuer"] == f"https://sts.windows.net/{lab.tenant}/"
    assert v1["token_endpoint"] == f"{lab.authority}/{lab.tenant}/oauth2/token"
    status, err = _get(lab, "/someone-else/v2.0/.well-known/openid-configuration")
    assert (status, err["error"]) == (400, "invalid_tenant")


def test_client_secret_credential_gets_a_v1_storage_token(lab_identity: LabIdentity) -> None:
    lab = lab_identity
    oid, appid = lab.principal("writer")
    credential = ClientSecretCredential(
        lab.tenant, appid, "lab-writer-secret", authority=lab.authority,
        disable_instance_discovery=True, connection_verify=str(lab.ca_bundle),
    )  # fmt: skip
    claims = _verify(lab, credential.get_token(STORAGE).token)
    assert claims["iss"] == f"https://sts.windows.net/{lab.tenant}/"
    assert (claims["aud"], claims["oid"], claims["appid"], claims["tid"], claims["ver"]) == (
        "https://storage.azure.com",
        oid,
        appid,
        lab.tenant,
        "1.0",
    )
    assert claims["nbf"] <= claims["iat"] < claims["exp"]
    wrong = ClientSecretCredential(
        lab.tenant, appid, "not-the-secret", authority=lab.authority,
        disable_instance_discovery=True, connection_verify=str(lab.ca_bundle),
    )  # fmt: skip
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        wrong.get_token(STORAGE)


def test_imds_and_app_service_managed_identity(
    lab_identity: LabIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_identity
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", lab.authority)
    vm = ManagedIdentityCredential(connection_verify=str(lab.ca_bundle))
    assert _verify(lab, vm.get_token(STORAGE).token)["oid"] == lab.principal("vm")[0]

    monkeypatch.delenv("AZURE_POD_IDENTITY_AUTHORITY_HOST")
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{lab.authority}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "lab-identity-header")
    scoped_oid, scoped_client = lab.principal("scoped")
    app = ManagedIdentityCredential(client_id=scoped_client, connection_verify=str(lab.ca_bundle))
    assert _verify(lab, app.get_token(STORAGE).token)["oid"] == scoped_oid


def test_managed_identity_endpoints_check_their_headers(lab_identity: LabIdentity) -> None:
    lab = lab_identity
    query = "?api-version=2018-02-01&resource=https://storage.azure.com"
    status, body = _get(lab, "/metadata/identity/oauth2/token" + query)
    assert (status, body["error"]) == (400, "invalid_request")  # no Metadata: true
    status, body = _get(lab, "/metadata/identity/oauth2/token" + query, {"Metadata": "true"})
    assert status == 200 and body["expires_in"].isdigit() and body["expires_on"].isdigit()
    assert _get(lab, "/msi/token" + query, {"X-IDENTITY-HEADER": "wrong"})[0] == 401
    status, body = _get(lab, "/msi/legacy" + query.replace("2018-02-01", "2017-09-01"),
                        {"secret": "lab-msi-secret"})  # fmt: skip
    assert (
        status == 200 and _verify(lab, body["access_token"])["aud"] == "https://storage.azure.com"
    )
    status, body = _get(lab, "/metadata/identity/oauth2/token" + query + "&client_id=0a1b2c3d-"
                        "0000-4000-8000-00000000ffff", {"Metadata": "true"})  # fmt: skip
    assert status == 400  # no such user-assigned identity


def test_v1_token_endpoint_takes_resource(lab_identity: LabIdentity) -> None:
    lab = lab_identity
    oid, appid = lab.principal("reader")
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": appid,
         "client_secret": "lab-reader-secret", "resource": "https://storage.azure.com/"}
    ).encode()  # fmt: skip
    ctx = ssl.create_default_context(cafile=str(lab.ca_bundle))
    url = f"{lab.authority}/{lab.tenant}/oauth2/token"
    with urllib.request.urlopen(url, data=form, context=ctx, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["expires_on"].isdigit() and body["resource"] == "https://storage.azure.com/"
    claims = _verify(lab, body["access_token"])
    assert (claims["aud"], claims["oid"]) == ("https://storage.azure.com/", oid)


def test_instance_discovery_names_the_authority_discovery_document(
    lab_identity: LabIdentity,
) -> None:
    lab = lab_identity
    auth = urllib.parse.quote(f"{lab.authority}/{lab.tenant}/oauth2/v2.0/authorize", safe="")
    status, body = _get(
        lab, f"/common/discovery/instance?api-version=1.1&authorization_endpoint={auth}"
    )
    assert status == 200
    assert body["tenant_discovery_endpoint"] == (
        f"{lab.authority}/{lab.tenant}/v2.0/.well-known/openid-configuration"
    )
    other = urllib.parse.quote(f"{lab.authority}/someone-else/oauth2/v2.0/authorize", safe="")
    status, body = _get(lab, f"/common/discovery/instance?authorization_endpoint={other}")
    assert (status, body["error"]) == (400, "invalid_instance")
