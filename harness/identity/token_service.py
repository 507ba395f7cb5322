"""``harness token-service``: a stand-in for Entra ID on loopback, speaking its wire protocol.

It is not Entra ID: it serves the documents and endpoints the real clients read, with real RSA
keys, so azure-identity and AzCopy acquire real signed tokens through their ordinary settings:

| path | what answers |
|---|---|
| ``/{tenant}/v2.0/.well-known/openid-configuration`` | OIDC discovery, v2 issuer form |
| ``/{tenant}/.well-known/openid-configuration`` | OIDC discovery, v1 issuer form |
| ``/{tenant}/discovery/v2.0/keys``, ``/{tenant}/discovery/keys`` | the JWKS (RSA, ``kid``) |
| ``POST /{tenant}/oauth2/v2.0/token`` | client credentials, ``scope=<resource>/.default`` |
| ``POST /{tenant}/oauth2/token`` | v1 client credentials, ``resource=`` |
| ``GET /metadata/identity/oauth2/token`` | IMDS (``Metadata: true``), found through
  ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` |
| ``GET /msi/token`` | App Service (``X-IDENTITY-HEADER``, 2019-08-01); ``IDENTITY_ENDPOINT`` |
| ``GET /msi/legacy`` | the ``MSI_ENDPOINT`` + ``MSI_SECRET`` flavour (``secret`` header) |
| ``POST /msi/legacy`` | ``MSI_ENDPOINT`` as Cloud Shell answers it (form ``resource``) |
| ``GET /common/discovery/instance`` | MSAL's instance discovery, for clients that always ask |

Tokens are what Azure Storage receives from Entra: RS256, v1 (``iss https://sts.windows.net/<tid>/``,
``ver 1.0``), ``aud`` the requested resource, ``oid``, ``appid``/``azp``, ``tid``, ``iat``/``nbf``/
``exp``. Every request is logged on stdout (``token-service: GET /path 200 ...``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from harness.identity.config import TokenServiceConfig
from harness.identity.keys import KeyRing

STORAGE_RESOURCE = "https://storage.azure.com"
CONFIG = web.AppKey("config", TokenServiceConfig)
RING = web.AppKey("ring", KeyRing)
CALLS = web.AppKey("calls", list)  # (method, path, status, principal) of every request


def v1_issuer(tenant: str) -> str:
    return f"https://sts.windows.net/{tenant}/"


def v2_issuer(tenant: str) -> str:
    return f"https://login.microsoftonline.com/{tenant}/v2.0"


def make_claims(
    tenant: str,
    *,
    object_id: str,
    app_id: str,
    resource: str = STORAGE_RESOURCE,
    lifetime_s: int = 3600,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of a v1 app-only access token, as Entra issues them for Azure Storage."""
    iat = int(time.time() if now is None else now)
    return {
        "aud": resource,
        "iss": v1_issuer(tenant),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime_s,
        "appid": app_id,
        "azp": app_id,
        "appidacr": "1",
        "idp": v1_issuer(tenant),
        "idtyp": "app",
        "oid": object_id,
        "sub": object_id,
        "tid": tenant,
        "uti": base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode(),
        "ver": "1.0",
    }


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    """Entra's error body: ``error``, ``error_description`` (AADSTS code first), trace ids."""
    body = {
        "error": error,
        "error_description": description,
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }
    return web.json_response(body, status=status)


def _tenant(request: web.Request) -> str | None:
    """The configured tenant id when the path names it (by id or domain), else None."""
    config = request.app[CONFIG]
    return config.tenant if request.match_info["tenant"].lower() in config.tenant_names() else None


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _no_tenant(request: web.Request) -> web.Response:
    return _oauth_error(
        400,
        "invalid_tenant",
        f"AADSTS90002: Tenant '{request.match_info['tenant']}' not found.",
    )


async def openid_configuration(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    if tenant is None:
        return _no_tenant(request)
    base = f"{_origin(request)}/{tenant}"
    v2 = "/v2.0/" in request.path
    suffix = "/v2.0" if v2 else ""
    return web.json_response(
        {
            "issuer": v2_issuer(tenant) if v2 else v1_issuer(tenant),
            "authorization_endpoint": f"{base}/oauth2{suffix}/authorize",
            "token_endpoint": f"{base}/oauth2{suffix}/token",
            "device_authorization_endpoint": f"{base}/oauth2{suffix}/devicecode",
            "jwks_uri": f"{base}/discovery{suffix}/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
        }
    )


async def jwks(request: web.Request) -> web.Response:
    if _tenant(request) is None and request.match_info["tenant"] != "common":
        return _no_tenant(request)
    request.app[RING].refresh()
    return web.json_response(request.app[RING].jwks())


async def instance_discovery(request: web.Request) -> web.Response:
    """MSAL's instance discovery (``/common/discovery/instance``), for clients that cannot turn
    it off (AzCopy's SPN login): the authority named in ``authorization_endpoint`` is declared
    valid and its own discovery document named, as Entra answers for a known cloud."""
    from urllib.parse import urlsplit

    endpoint = urlsplit(request.query.get("authorization_endpoint", ""))
    tenant = endpoint.path.strip("/").split("/")[0] if endpoint.path else ""
    if not endpoint.netloc or tenant.lower() not in request.app[CONFIG].tenant_names():
        return _oauth_error(400, "invalid_instance", "AADSTS50049: Unknown or invalid instance.")
    origin = f"{endpoint.scheme}://{endpoint.netloc}"
    return web.json_response(
        {
            "tenant_discovery_endpoint": f"{origin}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [
                {
                    "preferred_network": endpoint.netloc,
                    "preferred_cache": endpoint.netloc,
                    "aliases": [endpoint.netloc],
                }
            ],
        }
    )


def _issue(request: web.Request, object_id: str, app_id: str, resource: str) -> tuple[str, int]:
    config = request.app[CONFIG]
    now = time.time()
    claims = make_claims(
        config.tenant,
        object_id=object_id,
        app_id=app_id,
        resource=resource,
        lifetime_s=config.token_lifetime_s,
        now=now,
    )
    request["principal"] = object_id
    request.app[RING].refresh()
    return request.app[RING].sign(claims, now), claims["exp"]


async def token(request: web.Request) -> web.Response:
    """Client credentials with a secret: v2 (``scope``) or v1 (``resource``)."""
    tenant = _tenant(request)
    if tenant is None:
        return _no_tenant(request)
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type "
            f"'{form.get('grant_type', '')}'; this lab service speaks client_credentials only.",
        )
    client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
    if auth := request.headers.get("Authorization", ""):  # client_secret_basic
        with contextlib.suppress(ValueError):
            client_id, _, secret = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")
    client = request.app[CONFIG].client(client_id)
    if client is None:
        return _oauth_error(
            400,
            "unauthorized_client",
            f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
            f"directory '{tenant}'.",
        )
    if not secret or secret != client.secret:
        return _oauth_error(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
            f"request is the client secret value, not the client secret ID, for a secret added "
            f"to app '{client_id}'.",
        )
    v2 = "/v2.0/" in request.path
    if v2:
        scopes = str(form.get("scope", "")).split()
        defaults = [s for s in scopes if s.endswith("/.default")]
        if len(defaults) != 1:
            return _oauth_error(
                400,
                "invalid_scope",
                f"AADSTS1002012: The provided value for scope {' '.join(scopes)} is not valid. "
                "Client credential flows must have a scope value with /.default suffixed to the "
                "resource identifier (application ID URI).",
            )
        resource = defaults[0].removesuffix("/.default")
    else:
        resource = str(form.get("resource", ""))
        if not resource:
            return _oauth_error(
                400, "invalid_resource", "AADSTS50001: The resource parameter is required."
            )
    access_token, expires_on = _issue(request, client.object_id, client.client_id, resource)
    lifetime = expires_on - int(time.time())
    if v2:
        body: dict[str, Any] = {"token_type": "Bearer", "expires_in": lifetime}
        body |= {"ext_expires_in": lifetime, "access_token": access_token}
    else:  # v1 answers with strings, as Entra's v1 endpoint does
        body = {
            "token_type": "Bearer",
            "expires_in": str(lifetime),
            "ext_expires_in": str(lifetime),
            "expires_on": str(expires_on),
            "not_before": str(expires_on - request.app[CONFIG].token_lifetime_s),
            "resource": resource,
            "access_token": access_token,
        }
    return web.json_response(body)


def _identity_token(request: web.Request, flavour: str) -> web.Response:
    """The managed identity endpoints: checks the flavour's header, picks the identity the
    query names (or the system-assigned one), answers in the flavour's shape."""
    config = request.app[CONFIG]
    q = request.query
    if flavour == "imds" and request.headers.get("Metadata", "").lower() != "true":
        return _oauth_error(400, "invalid_request", "Required metadata header not specified")
    if flavour == "appservice" and request.headers.get("X-IDENTITY-HEADER") != (
        config.identity_header
    ):
        return web.json_response(
            {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong."}, status=401
        )
    if flavour == "legacy" and request.headers.get("secret") != config.msi_secret:
        return web.json_response(
            {"statusCode": 401, "message": "The secret header is missing or wrong."}, status=401
        )
    if not q.get("api-version"):
        return _oauth_error(
            400, "invalid_request", "Required query variable 'api-version' is missing"
        )
    resource = q.get("resource", "")
    if not resource:
        return _oauth_error(400, "invalid_request", "Required query variable 'resource' is missing")
    identity = config.identity(dict(q))
    if identity is None:
        return _oauth_error(
            400, "invalid_request", "Identity not found: no managed identity matches the request."
        )
    access_token, expires_on = _issue(request, identity.object_id, identity.client_id, resource)
    lifetime = expires_on - int(time.time())
    body: dict[str, Any] = {
        "access_token": access_token,
        "client_id": identity.client_id,
        "expires_on": str(expires_on),  # IMDS and App Service send epoch seconds as a string
        "not_before": str(expires_on - config.token_lifetime_s),
        "resource": resource,
        "token_type": "Bearer",
    }
    if flavour == "imds":
        body |= {"expires_in": str(lifetime), "ext_expires_in": str(lifetime)}
    return web.json_response(body)


async def imds_token(request: web.Request) -> web.Response:
    return _identity_token(request, "imds")


async def app_service_token(request: web.Request) -> web.Response:
    return _identity_token(request, "appservice")


async def legacy_msi_token(request: web.Request) -> web.Response:
    return _identity_token(request, "legacy")


async def cloud_shell_token(request: web.Request) -> web.Response:
    """``POST`` to ``MSI_ENDPOINT`` with a form ``resource``, as Cloud Shell's local endpoint
    takes it (boostedblob's managed identity path): no secret header, numeric ``expires_on``.
    A ``/.default`` suffix (boostedblob sends a v2 scope there) names its resource."""
    config = request.app[CONFIG]
    form = await request.post()
    resource = str(form.get("resource", "")).removesuffix("/.default")
    if not resource:
        return _oauth_error(400, "invalid_request", "Required form field 'resource' is missing")
    identity = config.identity({k: str(v) for k, v in form.items()})
    if identity is None:
        return _oauth_error(400, "invalid_request", "Identity not found.")
    access_token, expires_on = _issue(request, identity.object_id, identity.client_id, resource)
    return web.json_response(
        {
            "access_token": access_token,
            "expires_in": expires_on - int(time.time()),
            "expires_on": expires_on,
            "resource": resource,
            "token_type": "Bearer",
        }
    )


@web.middleware
async def _log_calls(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    principal = request.get("principal", "-")
    request.app[CALLS].append((request.method, request.path, response.status, principal))
    print(
        f"token-service: {request.method} {request.path} {response.status} principal={principal}",
        flush=True,
    )
    if isinstance(response, web.HTTPException) and response.status >= 400:
        raise response
    return response


async def _rotation(app: web.Application) -> AsyncIterator[None]:
    """Rotate on the configured schedule: each new key is published before it signs."""
    config, ring = app[CONFIG], app[RING]
    task = None
    if config.rotate_every_s:

        async def loop() -> None:
            while True:
                await asyncio.sleep(config.rotate_every_s)
                ring.rotate(config.rotation_lead_s)

        task = asyncio.create_task(loop())
    yield
    if task:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(config: TokenServiceConfig, ring: KeyRing) -> web.Application:
    app = web.Application(middlewares=[_log_calls])
    app[CONFIG], app[RING], app[CALLS] = config, ring, []
    r = app.router
    r.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration)
    r.add_get("/{tenant}/.well-known/openid-configuration", openid_configuration)
    r.add_get("/common/discovery/instance", instance_discovery)
    r.add_get("/{tenant}/discovery/v2.0/keys", jwks)
    r.add_get("/{tenant}/discovery/keys", jwks)
    r.add_post("/{tenant}/oauth2/v2.0/token", token)
    r.add_post("/{tenant}/oauth2/token", token)
    r.add_get("/metadata/identity/oauth2/token", imds_token)
    r.add_get("/msi/token", app_service_token)
    r.add_get("/msi/legacy", legacy_msi_token)
    r.add_post("/msi/legacy", cloud_shell_token)
    app.cleanup_ctx.append(_rotation)
    return app


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(
    config: TokenServiceConfig,
    ring: KeyRing,
    *,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    on_ready: Any = None,
) -> None:
    """Serve until SIGTERM / SIGINT; ``on_ready(port)`` once listening."""
    runner = web.AppRunner(create_app(config, ring), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    server = site._server
    bound = server.sockets[0].getsockname()[1] if server and server.sockets else port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_ready:
        on_ready(bound)
    await stop.wait()
    await runner.cleanup()


def describe(config: TokenServiceConfig, origin: str) -> dict[str, Any]:
    """What a client needs to reach the service, printed at start (and written as JSON)."""
    return {
        "tenant": config.tenant,
        "authority": origin,
        "issuer_v1": v1_issuer(config.tenant),
        "discovery": f"{origin}/{config.tenant}/v2.0/.well-known/openid-configuration",
        "env": {
            "AZURE_AUTHORITY_HOST": origin,
            "AZURE_POD_IDENTITY_AUTHORITY_HOST": origin,
            "IDENTITY_ENDPOINT": f"{origin}/msi/token",
            "IDENTITY_HEADER": config.identity_header,
            "MSI_ENDPOINT": f"{origin}/msi/legacy",
            "MSI_SECRET": config.msi_secret,
        },
    }


def write_description(path: Path, description: dict[str, Any]) -> None:
    path.write_text(json.dumps(description, indent=1))
