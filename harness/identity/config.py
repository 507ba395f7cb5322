"""The token service's configuration: one YAML file, validated like every lab file.

```yaml
tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47   # the tenant id (a GUID)
domains: [lab.onmicrosoft.com]                  # other names the tenant answers to
token_lifetime_s: 3600
clients:                                        # confidential clients (client credentials)
  - {client_id: 11111111-..., secret: s3cret, object_id: 22222222-..., name: ingest}
managed_identities:                             # the first one is the system-assigned identity
  - {client_id: 33333333-..., object_id: 44444444-..., name: vm}
identity_header: lab-identity-header            # App Service's X-IDENTITY-HEADER value
msi_secret: lab-msi-secret                      # the MSI_ENDPOINT flavour's ``secret`` header
```
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.scenario import load_model


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _guid(value: str) -> str:
    return str(UUID(value))  # raises ValueError (a readable pydantic error) when not a GUID


class Client(_Model):
    client_id: str
    secret: str = Field(min_length=1)
    object_id: str  # the service principal's oid in tokens
    name: str = ""

    _ids = field_validator("client_id", "object_id")(_guid)


class ManagedIdentity(_Model):
    client_id: str
    object_id: str
    name: str = ""
    resource_id: str = ""  # the ARM id (msi_res_id / mi_res_id selectors)

    _ids = field_validator("client_id", "object_id")(_guid)


class TokenServiceConfig(_Model):
    tenant: str
    domains: list[str] = Field(default_factory=list)
    token_lifetime_s: int = Field(default=3600, ge=60, le=24 * 3600)
    clients: list[Client] = Field(default_factory=list)
    managed_identities: list[ManagedIdentity] = Field(default_factory=list)
    identity_header: str = "lab-identity-header"
    msi_secret: str = "lab-msi-secret"
    rotate_every_s: int | None = Field(default=None, ge=60)  # None: keys rotate only on demand
    rotation_lead_s: int = Field(default=300, ge=0)  # a new key is published this long first

    _tenant = field_validator("tenant")(_guid)

    @model_validator(mode="after")
    def _unique_ids(self) -> TokenServiceConfig:
        ids = [c.client_id for c in self.clients] + [m.client_id for m in self.managed_identities]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"client ids used twice: {', '.join(dupes)}")
        return self

    def tenant_names(self) -> set[str]:
        return {self.tenant, *(d.lower() for d in self.domains)}

    def client(self, client_id: str) -> Client | None:
        return next((c for c in self.clients if c.client_id == client_id), None)

    def identity(self, selector: dict[str, str]) -> ManagedIdentity | None:
        """The managed identity a request names (client_id, object_id or resource id), or the
        system-assigned one (the first) when it names none."""
        for field, attr in (
            ("client_id", "client_id"),
            ("clientid", "client_id"),
            ("object_id", "object_id"),
            ("msi_res_id", "resource_id"),
            ("mi_res_id", "resource_id"),
        ):
            if selector.get(field):
                wanted = selector[field].lower()
                return next(
                    (m for m in self.managed_identities if getattr(m, attr).lower() == wanted),
                    None,
                )
        return self.managed_identities[0] if self.managed_identities else None


def load_config(path: Path) -> TokenServiceConfig:
    """The validated file; ScenarioError (file:line: field: message) on any problem."""
    return load_model(Path(path), TokenServiceConfig, what="a token service configuration")
