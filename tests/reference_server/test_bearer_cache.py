"""Bearer validation in process: the verified-token cache still enforces the token's lifetime
and is kept per account (a token checked against one account's tenant proves nothing for
another's)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from multidict import CIMultiDict, CIMultiDictProxy

from reference_server.auth import Access, RequestView, bearer
from reference_server.config import DEV_KEY, Account, BearerConfig, RoleAssignment
from reference_server.errors import StorageError

ISSUER = "https://127.0.0.1:1/lab/v2.0"
TENANT_A = "6d3c1a2e-5b4f-4c8e-9a71-0f2b3c4d5e6f"
TENANT_B = "0b0b0b0b-1111-4222-8333-444444444444"
OID = "0a1b2c3d-0000-4000-8000-0000000000a1"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(autouse=True)
def keys() -> Iterator[None]:
    bearer.clear_cache()
    bearer._CACHE[ISSUER] = bearer.IssuerKeys(keys={"k1": KEY.public_key()})
    yield
    bearer.clear_cache()


def _account(name: str, tenant: str) -> Account:
    roles = [RoleAssignment(OID, "Storage Blob Data Reader")]
    return Account(name, [DEV_KEY], bearer=BearerConfig(tenant, [ISSUER], roles))


def _view(account: str, token: str) -> RequestView:
    headers = CIMultiDictProxy(
        CIMultiDict({"Authorization": f"Bearer {token}", "x-ms-version": "2025-07-05"})
    )
    return RequestView("GET", f"/{account}/ct/b", [], headers, account, True, secure=True)


def _token(tenant: str, lifetime_s: int = 3600) -> str:
    now = int(time.time())
    claims = {
        "aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{tenant}/",
        "tid": tenant, "oid": OID, "iat": now, "nbf": now, "exp": now + lifetime_s,
    }  # fmt: skip
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})


READ = Access("r", "o", "ct", "b", is_read=True)


def test_cached_token_still_expires() -> None:
    account, token = _account("a", TENANT_A), _token(TENANT_A, lifetime_s=60)
    assert bearer.verify(_view("a", token), account, READ).details["oid"] == OID
    assert ("a", token) in bearer._VERIFIED
    later = time.time() + 60 + bearer.SKEW_S + 1
    with pytest.raises(StorageError) as info:
        bearer.validate_token(token, _view("a", token), account, now=later)
    assert info.value.code == "InvalidAuthenticationInfo"
    assert "expired" in info.value.details["AuthenticationErrorDetail"]


def test_cache_is_per_account() -> None:
    a, b = _account("a", TENANT_A), _account("b", TENANT_B)
    token = _token(TENANT_A)
    assert bearer.verify(_view("a", token), a, READ).scheme == "bearer"
    with pytest.raises(StorageError) as info:
        bearer.verify(_view("b", token), b, READ)
    assert info.value.code == "InvalidAuthenticationInfo"
    assert TENANT_B in info.value.headers["WWW-Authenticate"]


def test_unknown_kids_refetch_at_most_once_per_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Discovery once, then one JWKS fetch per refresh floor however many forged kids arrive;
    a burst of first requests shares one fetch."""
    import asyncio

    bearer.clear_cache()
    fetched: list[str] = []

    async def fake_fetch(url: str, trust_ca: object) -> dict:
        fetched.append(url)
        await asyncio.sleep(0.01)  # concurrent callers overlap here
        if url.endswith("openid-configuration"):
            return {"issuer": "https://sts.windows.net/x/", "jwks_uri": "https://127.0.0.1:1/keys"}
        return {"keys": []}

    monkeypatch.setattr(bearer, "_fetch_json", fake_fetch)
    config = BearerConfig(TENANT_A, [ISSUER])
    tokens = [
        jwt.encode({"n": i}, KEY, algorithm="RS256", headers={"kid": f"forged-{i}"})
        for i in range(5)
    ]

    async def burst(floor: float) -> None:
        await asyncio.gather(*(bearer.ensure_keys("a", t, config, None, floor) for t in tokens))

    asyncio.run(burst(3600))
    assert fetched == [f"{ISSUER}/.well-known/openid-configuration", "https://127.0.0.1:1/keys"]
    asyncio.run(burst(3600))  # within the floor: nothing more
    assert len(fetched) == 2
    asyncio.run(burst(0))  # past the floor: the JWKS again (discovery is kept)
    assert fetched[2:] == ["https://127.0.0.1:1/keys"] * (len(fetched) - 2)
    assert len(fetched) >= 3
