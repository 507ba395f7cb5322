"""Server configuration: one model with defaults, overridable from YAML, then CLI flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# The emulator's well-known development account, so UseDevelopmentStorage=true works unchanged.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


# Role names as Azure's built-in data roles, each mapped to the SAS permission letters it grants.
ROLES = {
    "Storage Blob Data Reader": "rl",
    "Storage Blob Data Contributor": "racwdlxtmiy",
    "Storage Blob Data Owner": "racwdlxtmiyeops",
}


@dataclass
class RoleAssignment:
    principal: str  # the token's oid, or its appid (a service principal's client id)
    role: str  # a key of ROLES
    scope: str = "account"  # "account", or "containers/NAME" for one container


@dataclass
class BearerConfig:
    """Entra ID (OAuth) for one account: its tenant, the issuers whose keys are trusted and the
    role assignments. Each issuer is an authority URL; its OIDC discovery document is fetched
    from ``<issuer>/.well-known/openid-configuration`` over https."""

    tenant: str
    issuers: list[str]
    roles: list[RoleAssignment] = field(default_factory=list)


@dataclass
class Account:
    name: str
    keys: list[str]  # base64 Shared Keys; any of them signs
    allow_anonymous_read: bool = False  # anonymous GET/HEAD/list when configured
    bearer: BearerConfig | None = None  # bearer tokens accepted when set


@dataclass
class ServerConfig:
    data_root: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 10000
    workers: int = 1
    max_inflight: int = 4096  # requests in progress per worker before 503 ServerBusy
    # Nothing waits forever (reference_server/connections.py). A request head must be complete
    # this long after its first byte; a body that gets no byte this long closes its connection;
    # one that gets under 16 KiB in a body_stall_s window stops counting toward max_inflight.
    head_timeout_s: float = 60.0
    body_timeout_s: float = 120.0
    body_stall_s: float = 5.0
    keepalive_timeout_s: float = 75.0  # idle connection between requests (nginx's default)
    max_connections: int = 8192  # per worker; over it the oldest idle connection is shed
    retry_after_s: int = 1
    # An asynchronous Copy Blob of a same-account blob on this façade up to this size is done
    # before the answer (status success, as Azure usually answers copies within an account);
    # a larger one runs as a job (status pending). 256 MiB: Copy Blob From URL's own limit.
    sync_copy_max: int = 256 * 1024 * 1024
    accounts: list[Account] = field(default_factory=lambda: [Account(DEV_ACCOUNT, [DEV_KEY])])
    uncommitted_block_max_age_s: int = 7 * 24 * 3600
    api_version: str = "2025-07-05"  # sent back in x-ms-version when the client sends none
    event_loop: str = "uvloop"  # or "asyncio"; reads use sendfile(2) on either
    # Thread pool per worker for body writes, fsync, commits and listings. More threads only
    # add GIL hand-offs on a small machine: 8 measured ~20% less CPU per small op than 32.
    io_threads: int = 8
    log_level: str = "WARNING"
    # https when both are set: a PEM certificate (chain) and its private key, as file paths
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # CA bundle (PEM) that the issuers' https certificates must chain to (OIDC discovery, JWKS)
    trust_ca: Path | None = None
    jwks_refresh_floor_s: float = (
        30.0  # an unknown kid refetches an issuer's JWKS at most this often
    )

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def account(self, name: str) -> Account | None:
        return next((a for a in self.accounts if a.name == name), None)


_PATH_KEYS = {"data_root", "tls_cert", "tls_key", "trust_ca"}


def load_yaml(path: Path, base: ServerConfig | None = None) -> ServerConfig:
    """Overlay a YAML file on ``base`` (defaults). ``accounts`` entries add to / replace by name."""
    import dataclasses

    import yaml

    config = base or ServerConfig()
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    known = {f.name for f in dataclasses.fields(ServerConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    for entry in data.pop("accounts", None) or []:
        keys = entry.get("keys") or ([entry["key"]] if "key" in entry else [])
        account = Account(entry["name"], list(keys), bool(entry.get("allow_anonymous_read")))
        if entry.get("bearer"):
            account.bearer = parse_bearer(entry["bearer"], f"{path}: accounts[{entry['name']}]")
        add_account(config, account)
    for key, value in data.items():
        is_path = key in _PATH_KEYS and value is not None
        setattr(config, key, Path(value) if is_path else value)
    return config


def add_account(config: ServerConfig, account: Account) -> None:
    config.accounts = [a for a in config.accounts if a.name != account.name] + [account]


def parse_bearer(data: dict, where: str) -> BearerConfig:
    """An account's ``bearer`` mapping: tenant, issuers, roles [{principal, role, scope}]."""
    if not isinstance(data, dict) or not data.get("tenant") or not data.get("issuers"):
        raise ValueError(f"{where}.bearer: needs tenant and issuers")
    issuers = [str(i).rstrip("/") for i in data["issuers"]]
    for issuer in issuers:
        if not issuer.startswith("https://"):
            raise ValueError(f"{where}.bearer.issuers: {issuer} is not an https URL")
    roles = []
    for i, entry in enumerate(data.get("roles") or []):
        role = RoleAssignment(
            str(entry.get("principal", "")),
            str(entry.get("role", "")),
            entry.get("scope", "account"),
        )
        scope_ok = role.scope == "account" or (
            role.scope.startswith("containers/") and len(role.scope) > len("containers/")
        )
        if not role.principal or role.role not in ROLES or not scope_ok:
            raise ValueError(
                f"{where}.bearer.roles[{i}]: needs principal, role (one of {', '.join(ROLES)}) "
                "and scope (account or containers/NAME)"
            )
        roles.append(role)
    return BearerConfig(str(data["tenant"]).lower(), issuers, roles)
