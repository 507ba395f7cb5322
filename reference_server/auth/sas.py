"""Shared access signatures for the Blob service: account SAS and service SAS (container, blob).

One string-to-sign per kind, used to verify (server) and to generate (harness clients):

- account SAS: ``account sp ss srt st se sip spr sv [ses]`` one per line, trailing newline;
  ``ses`` (signed encryption scope) from version 2020-12-06.
- service SAS: ``sp st se /blob/account/container[/blob] si sip spr sv [sr snapshot] [ses]
  rscc rscd rsce rscl rsct`` one per line; ``sr``/``snapshot`` from 2018-11-09, ``ses`` from
  2020-12-06. The canonicalized resource uses the decoded container and blob names of the
  request, so a container or blob SAS used on another resource fails its signature. The
  response-header overrides (rscc, rscd, rsce, rscl, rsct) are signed and handed back in
  ``Principal.details`` for the server to apply.
- user delegation SAS (``skoid sktid skt ske sks skv``): signed with a user delegation key the
  service hands out to a bearer-authenticated caller (Get User Delegation Key). The key's
  ``Value`` is derived, not stored: an HMAC of its signed fields under the account key
  (``user_delegation_key_value``), so every worker recomputes it and a tampered field changes
  the key. The string-to-sign follows the signed version (``user_delegation_string_to_sign``:
  2018-11-09, 2020-02-10 adds saoid suoid scid, 2020-12-06 adds ses, 2025-07-05 adds skdutid
  sduoid and the signed request headers / query lines). The key's principal (``skoid``) must
  still hold a role granting the operation. An account without bearer configuration refuses
  every user delegation SAS (403 AuthenticationFailed).

Scope: a service SAS authorizes only the operations whose route lists its signed resource
(``Access.service_sas``): never the container itself (403 AuthorizationFailure) nor anything
above the level it was signed for (403 AuthenticationFailed, Azure's "signed resource is not
allowed for the this resource level"). Snapshot and version SAS (sr=bs, sr=bv) are refused: the
façade keeps no snapshots or versions, so they could only reach the base blob.

Failures use Azure's codes: AuthenticationFailed (bad, expired or not-yet-valid signature),
AuthorizationPermissionMismatch, AuthorizationResourceTypeMismatch, AuthorizationServiceMismatch,
AuthorizationProtocolMismatch, AuthorizationSourceIPMismatch, AuthorizationFailure.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from reference_server.auth import Access, Principal, RequestView
from reference_server.auth.shared_key import compute_signature
from reference_server.config import Account
from reference_server.errors import StorageError

log = logging.getLogger(__name__)

# The signed version the project's own clients use (the API version the façade answers with).
SAS_VERSION = "2025-07-05"
_OLDEST_VERSION = "2015-04-05"  # older layouts are not reproduced: such a SAS fails its signature

OVERRIDE_FIELDS = ("rscc", "rscd", "rsce", "rscl", "rsct")
# generate_service_sas keyword -> query name, named as azure-storage-blob names them
_OVERRIDE_KEYWORDS = {
    "cache_control": "rscc",
    "content_disposition": "rscd",
    "content_encoding": "rsce",
    "content_language": "rscl",
    "content_type": "rsct",
}
_UDK_FIELDS = ("skoid", "sktid", "skt", "ske", "sks", "skv")
# the query parameters a SAS is made of (signed, or the signature itself)
SAS_FIELDS = frozenset(
    {"sv", "ss", "srt", "sp", "st", "se", "sip", "spr", "sr", "si", "ses", "sig"}
    | {"saoid", "suoid", "scid", "skdutid", "sduoid", "srh", "srq", *_UDK_FIELDS, *OVERRIDE_FIELDS}
)


def is_sas(query: Iterable[tuple[str, str]]) -> bool:
    """A request is SAS-authorized when its query carries a signature."""
    return any(name == "sig" for name, _ in query)


# The value ends where a URL parameter does, or where a URL quoted in log text does.
_SIG_RE = re.compile(r"([?&]sig=)[^&#\s'\"]*", re.IGNORECASE)


def redact(target: str) -> str:
    """A URL or request target with the SAS signature blanked, for access logs and errors; also
    any text quoting such URLs (log records)."""
    return _SIG_RE.sub(r"\1REDACTED", target)


def _fields(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in query:
        fields.setdefault(name, value)  # the first occurrence wins
    return fields


def _lines(fields: Mapping[str, str], names: Iterable[str]) -> str:
    return "".join(fields.get(n, "") + "\n" for n in names)


def account_string_to_sign(account: str, fields: Mapping[str, str]) -> str:
    names = ["sp", "ss", "srt", "st", "se", "sip", "spr", "sv"]
    if fields.get("sv", "") >= "2020-12-06":
        names.append("ses")
    return f"{account}\n" + _lines(fields, names)


def service_canonical_resource(account: str, container: str | None, blob: str | None) -> str:
    path = f"/blob/{account}"
    if container:
        path += f"/{container}"
        if blob:
            path += f"/{blob}"
    return path


def service_string_to_sign(fields: Mapping[str, str], canonical_resource: str) -> str:
    """The service SAS string-to-sign (account key), for signed versions 2015-04-05 and later."""
    version = fields.get("sv", "")
    names = ["si", "sip", "spr", "sv"]
    if version >= "2018-11-09":
        names += ["sr", "snapshot"]
    if version >= "2020-12-06":
        names.append("ses")
    names += OVERRIDE_FIELDS
    head = _lines(fields, ["sp", "st", "se"]) + canonical_resource + "\n"
    return (head + _lines(fields, names))[:-1]  # no trailing newline


def user_delegation_string_to_sign(
    fields: Mapping[str, str],
    canonical_resource: str,
    signed_headers: Mapping[str, str] | None = None,
    signed_query: Mapping[str, str] | None = None,
) -> str:
    """The user delegation SAS string-to-sign of the signed version ``sv``. From 2025-07-05 in
    the layout current SDKs build: the delegation key fields, the delegated user, then the
    request headers and query parameters the SAS binds (``srh``/``srq``, ``name:value``
    lines); older versions in their documented layouts."""
    head = _lines(fields, ["sp", "st", "se"]) + canonical_resource + "\n"
    version = fields.get("sv", "")
    if version < "2025-07-05":
        names = list(_UDK_FIELDS)
        if version >= "2020-02-10":
            names += ["saoid", "suoid", "scid"]
        names += ["sip", "spr", "sv", "sr", "snapshot"]
        if version >= "2020-12-06":
            names.append("ses")
        return (head + _lines(fields, [*names, *OVERRIDE_FIELDS]))[:-1]
    middle = _lines(
        fields,
        [*_UDK_FIELDS, "saoid", "suoid", "scid", "skdutid", "sduoid", "sip", "spr", "sv", "sr"],
    )
    middle += _lines(fields, ["snapshot", "ses"])
    srh = "".join(f"{k}:{v}\n" for k, v in (signed_headers or {}).items())
    srq = "".join(f"\n{k}:{v}" for k, v in (signed_query or {}).items())
    tail = srh + "\n" + srq + "\n" + _lines(fields, OVERRIDE_FIELDS)
    return (head + middle + tail)[:-1]


def _format_time(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _token(fields: Mapping[str, str]) -> str:
    return "&".join(f"{n}={quote(v, safe='')}" for n, v in fields.items() if v)


def generate_account_sas(
    account: str,
    key_b64: str,
    *,
    services: str = "b",
    resource_types: str = "sco",
    permissions: str,
    expiry: datetime,
    start: datetime | None = None,
    protocol: str | None = None,
    ip: str | None = None,
    version: str = SAS_VERSION,
) -> str:
    """An account SAS query string (without '?'). Naive datetimes are taken as UTC."""
    fields = {
        "sv": version,
        "ss": services,
        "srt": resource_types,
        "sp": permissions,
        "st": _format_time(start) if start else "",
        "se": _format_time(expiry),
        "sip": ip or "",
        "spr": protocol or "",
    }
    fields["sig"] = compute_signature(key_b64, account_string_to_sign(account, fields))
    return _token(fields)


def generate_service_sas(
    account: str,
    key_b64: str,
    *,
    container: str,
    blob: str | None,
    permissions: str,
    expiry: datetime,
    start: datetime | None = None,
    protocol: str | None = None,
    ip: str | None = None,
    version: str = SAS_VERSION,
    snapshot: str | None = None,
    version_id: str | None = None,
    **response_overrides: str,
) -> str:
    """A container SAS (``blob=None``, sr=c) or blob SAS (sr=b) query string (without '?');
    with ``snapshot`` or ``version_id`` a snapshot (sr=bs) or version (sr=bv) SAS, whose time or
    id is signed but sent by the client as the request's own ``snapshot`` / ``versionid``
    parameter, as azure-storage-blob does. ``response_overrides`` are cache_control,
    content_disposition, content_encoding, content_language, content_type (signed as rscc,
    rscd, rsce, rscl, rsct)."""
    unknown = set(response_overrides) - set(_OVERRIDE_KEYWORDS)
    if unknown:
        raise TypeError(f"unknown response overrides: {sorted(unknown)}")
    resource_kind = "bs" if snapshot else "bv" if version_id else "b" if blob else "c"
    fields = {
        "sv": version,
        "sr": resource_kind,
        "sp": permissions,
        "st": _format_time(start) if start else "",
        "se": _format_time(expiry),
        "sip": ip or "",
        "spr": protocol or "",
    }
    for keyword, name in _OVERRIDE_KEYWORDS.items():
        fields[name] = response_overrides.get(keyword) or ""
    resource = service_canonical_resource(account, container, blob)
    signed = {**fields, "snapshot": snapshot or version_id or ""}
    fields["sig"] = compute_signature(key_b64, service_string_to_sign(signed, resource))
    return _token(fields)


def _fail(detail: str, code: str = "AuthenticationFailed") -> StorageError:
    return StorageError(code, details={"AuthenticationErrorDetail": detail})


_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2})(:\d{2})?(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")


def parse_sas_time(value: str) -> datetime:
    """ISO 8601 in the forms Azure accepts: a date, or a time to minutes, seconds or fractions
    (up to 7 digits), in UTC (``Z``) or with an offset."""
    m = _TIME.match(value)
    if not m:
        raise ValueError(value)
    day, hm, sec, frac, zone = m.groups()
    # Azure allows 7 fractional digits; Python takes at most microseconds
    text = f"{day}T{hm or '00:00'}{sec or ':00'}{(frac or '')[:7]}"
    when = datetime.fromisoformat(text + ("+00:00" if zone in (None, "Z") else zone))
    return when.astimezone(UTC)


def _check_time(fields: Mapping[str, str], now: datetime) -> None:
    try:
        expiry = parse_sas_time(fields["se"]) if fields.get("se") else None
        start = parse_sas_time(fields["st"]) if fields.get("st") else None
    except ValueError as exc:
        raise _fail("Signature fields not well formed: st or se is not a valid time.") from exc
    if expiry is None:
        raise _fail("Signed expiry (se) is required.")
    if (start is not None and now < start) or now > expiry:
        raise _fail(
            f"Signature not valid in the specified time frame: Start [{fields.get('st', '')}] - "
            f"Expiry [{fields['se']}] - Current [{now.strftime('%a, %d %b %Y %H:%M:%S GMT')}]"
        )


def _check_ip(sip: str, client_ip: str | None) -> None:
    try:
        low_s, _, high_s = sip.partition("-")
        low = ipaddress.ip_address(low_s.strip())
        high = ipaddress.ip_address(high_s.strip()) if high_s else low
        client = ipaddress.ip_address(client_ip or "")
    except ValueError as exc:
        raise _fail(
            f"The source IP is not within the signed range '{sip}'.",
            "AuthorizationSourceIPMismatch",
        ) from exc
    same_family = client.version == low.version == high.version
    if not (same_family and int(low) <= int(client) <= int(high)):
        raise _fail(
            f"The source IP '{client_ip}' is not within the signed range '{sip}'.",
            "AuthorizationSourceIPMismatch",
        )


def user_delegation_key_value(account: Account, fields: Mapping[str, str]) -> str:
    """The base64 key of a user delegation key with these signed fields (skoid sktid skt ske
    sks skv): an HMAC of them under the account's first key. Nothing is stored, every worker
    derives the same key, and changing any field (a longer expiry, another oid) changes it."""
    text = "user-delegation-key\n" + "".join(fields.get(n, "") + "\n" for n in _UDK_FIELDS)
    return compute_signature(account.keys[0], text)


def _verify_user_delegation(
    view: RequestView,
    account: Account,
    access: Access,
    fields: Mapping[str, str],
    now: datetime,
) -> Principal:
    from reference_server.auth import bearer as bearer_mod

    bearer = account.bearer
    assert bearer is not None
    missing = [n for n in _UDK_FIELDS if not fields.get(n)]
    if missing:
        raise _fail(f"Signature fields not well formed: {', '.join(missing)} missing.")
    if fields["sktid"].lower() != bearer.tenant:
        raise _fail(f"The user delegation key's tenant {fields['sktid']} is not this account's.")
    try:
        key_start, key_expiry = parse_sas_time(fields["skt"]), parse_sas_time(fields["ske"])
    except ValueError as exc:
        raise _fail("Signature fields not well formed: skt or ske is not a valid time.") from exc
    if not key_start <= now <= key_expiry:
        raise _fail(
            f"The user delegation key is not valid now: SignedStart [{fields['skt']}] - "
            f"SignedExpiry [{fields['ske']}]."
        )
    if "b" not in fields["sks"]:
        raise _fail("The user delegation key is not for the Blob service (sks).")
    signed_resource = fields.get("sr", "")
    if signed_resource not in ("c", "b"):
        raise _fail(f"Signed resource '{signed_resource}' is not supported.")
    if access.container is None or (signed_resource == "b" and access.blob is None):
        raise _fail("The specified signed resource is not allowed for the this resource level")
    blob = access.blob if signed_resource == "b" else None
    sts = user_delegation_string_to_sign(
        fields, service_canonical_resource(account.name, access.container, blob)
    )
    expected = compute_signature(user_delegation_key_value(account, fields), sts)
    if not hmac.compare_digest(expected.encode(), fields["sig"].replace(" ", "+").encode()):
        log.debug("user delegation SAS mismatch for %s; string-to-sign %r", account.name, sts)
        raise _fail(
            "Signature did not match. String to sign used was " + sts.replace("\n", "\\n") + "."
        )
    _check_time(fields, now)
    protocols = {p.strip() for p in fields.get("spr", "https,http").split(",")}
    if not view.secure and "http" not in protocols:
        raise _fail(
            "This request is not authorized to perform this operation using this protocol.",
            "AuthorizationProtocolMismatch",
        )
    if fields.get("sip"):
        _check_ip(fields["sip"], view.client_ip)
    if signed_resource not in access.service_sas:
        raise _fail(
            f"A user delegation SAS (sr={signed_resource}) cannot authorize this operation on "
            "the container.",
            "AuthorizationFailure",
        )
    permissions = fields.get("sp", "")
    scope = _check_permission(permissions, access)
    if not bearer_mod.role_allows(bearer, [fields["skoid"]], access):
        raise _fail(
            f"The user delegation key's principal {fields['skoid']} no longer holds a role "
            "granting this operation.",
            "AuthorizationPermissionMismatch",
        )
    details = {"sas": "user-delegation", "permissions": permissions, "expiry": fields["se"]}
    details |= {"resource": signed_resource, "oid": fields["skoid"], **scope}
    details.update({n: fields[n] for n in OVERRIDE_FIELDS if fields.get(n)})
    return Principal("sas", account.name, details)


def _check_permission(permissions: str, access: Access) -> dict[str, str]:
    """403 AuthorizationPermissionMismatch unless one of the operation's letters is signed. When
    c (create) is the only one, the write is marked create-only: Azure's c "can create new blobs
    ... but may not overwrite existing blobs" (Create an account SAS), which the store enforces
    under its commit lock (``Conditions.create_only``)."""
    if access.permission and not any(p in permissions for p in access.permission):
        raise _fail(
            f"The signed permissions '{permissions}' do not include '{access.permission}'.",
            "AuthorizationPermissionMismatch",
        )
    others = [p for p in access.permission if p != "c"]
    if "c" in access.permission and not any(p in permissions for p in others):
        return {"create_only": "true"}
    return {}


def _check_single(query: Iterable[tuple[str, str]]) -> None:
    """A SAS field given twice is refused (403 AuthenticationFailed): Azure refuses a second
    ``sig``, and a verifier that reads one copy while a proxy or log reads the other is how a
    signature gets confused with what it signed."""
    counts = Counter(n for n, _ in query if n in SAS_FIELDS)
    twice = sorted(n for n, count in counts.items() if count > 1)
    if twice:
        raise _fail(f"Signature fields not well formed: {', '.join(twice)} given more than once.")


def _check_signature(account: Account, sts: str, presented: str, kind: str) -> None:
    given = presented.encode("ascii", "replace")
    ok = False
    for key in account.keys:
        ok |= hmac.compare_digest(compute_signature(key, sts).encode("ascii"), given)
    if not ok:
        log.debug("%s SAS mismatch for account %s; string-to-sign %r", kind, account.name, sts)
        raise _fail(
            "Signature did not match. String to sign used was " + sts.replace("\n", "\\n") + "."
        )


def verify(
    view: RequestView, account: Account, access: Access, now: datetime | None = None
) -> Principal:
    """Verify the SAS in ``view.query`` for one operation needing ``access``. Order: signature,
    time window, protocol, source IP, then service / resource type / permission."""
    _check_single(view.query)
    fields = _fields(view.query)
    if not fields.get("sig") or not fields.get("sv"):
        raise _fail("Signature fields not well formed: sig and sv are required.")
    if fields["sv"] < _OLDEST_VERSION:
        raise _fail(f"Signed version {fields['sv']} is not supported.")
    if "skoid" in fields:
        if account.bearer is None:
            raise _fail(
                "User delegation SAS needs bearer authentication, which is not enabled on this "
                "server."
            )
        return _verify_user_delegation(view, account, access, fields, now or datetime.now(UTC))
    if fields.get("si"):
        raise _fail("Stored access policies (si) are not supported on this server.")

    if "ss" in fields or "srt" in fields:
        kind = "account"
        sts = account_string_to_sign(account.name, fields)
    elif "sr" in fields:
        kind = "service"
        signed_resource = fields["sr"]
        if signed_resource in ("bs", "bv"):
            # no snapshots or versions exist here: such a SAS could only reach the base blob
            raise _fail(
                "Snapshot and version SAS (sr=bs, sr=bv) are not supported: this service keeps "
                "no blob snapshots or versions."
            )
        if signed_resource not in ("c", "b"):
            raise _fail(f"Signed resource '{signed_resource}' is not supported.")
        if access.container is None or (signed_resource == "b" and access.blob is None):
            # Azure's detail, word for word, for a SAS used above the level it was signed for
            raise _fail("The specified signed resource is not allowed for the this resource level")
        blob = access.blob if signed_resource == "b" else None
        resource = service_canonical_resource(account.name, access.container, blob)
        sts = service_string_to_sign(fields, resource)
    else:
        raise _fail("Signature fields not well formed: no ss/srt or sr.")

    # a '+' of the base64 signature sent unencoded arrives as a space; base64 has no spaces
    _check_signature(account, sts, fields["sig"].replace(" ", "+"), kind)
    _check_time(fields, now or datetime.now(UTC))
    protocols = {p.strip() for p in fields.get("spr", "https,http").split(",")}
    if not view.secure and "http" not in protocols:
        raise _fail(
            "This request is not authorized to perform this operation using this protocol.",
            "AuthorizationProtocolMismatch",
        )
    if fields.get("sip"):
        _check_ip(fields["sip"], view.client_ip)

    permissions = fields.get("sp", "")
    if kind == "account":
        if "b" not in fields.get("ss", ""):
            raise _fail(
                "The signed services (ss) do not include the Blob service (b).",
                "AuthorizationServiceMismatch",
            )
        if not any(t in fields.get("srt", "") for t in access.resource_type):
            raise _fail(
                f"The signed resource types (srt) do not include '{access.resource_type}'.",
                "AuthorizationResourceTypeMismatch",
            )
    elif fields["sr"] not in access.service_sas:
        # Azure: a container SAS cannot create, delete or read/write the properties and metadata
        # of its container, nor a blob SAS list it; only an account SAS or Shared Key can.
        raise _fail(
            f"A service SAS (sr={fields['sr']}) cannot authorize this operation on the "
            "container; use an account SAS.",
            "AuthorizationFailure",
        )
    scope = _check_permission(permissions, access)

    details = {"sas": kind, "permissions": permissions, "expiry": fields["se"], **scope}
    if kind == "service":
        details["resource"] = fields["sr"]
        details.update({n: fields[n] for n in OVERRIDE_FIELDS if fields.get(n)})
    return Principal("sas", account.name, details)
