"""A nightly suite: which scenarios run against which targets, how often, into which history,
and optionally on which provisioned hosts. Validated like a scenario (file:line: field)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.scenario import load_model
from harness.targets import INVENTORY_TARGET, TARGET_NAMES


class ConformanceStep(BaseModel):
    """The conformance gate as a night step (what `harness conformance` runs)."""

    model_config = ConfigDict(extra="forbid")

    only: list[str] = Field(default_factory=list)  # groups or check-id prefixes; empty: all
    target: str | None = None  # default: the suite's first target

    @field_validator("target")
    @classmethod
    def _known_target(cls, v: str | None) -> str | None:
        known = (*TARGET_NAMES, INVENTORY_TARGET)
        if v is not None and v not in known:
            raise ValueError(f"unknown target {v!r}: one of {', '.join(known)}")
        return v


class NightlySuite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,60}$")
    description: str = ""
    scenarios: list[str] = Field(min_length=1)  # shipped names, or paths relative to the suite
    targets: list[str] = Field(default_factory=list)  # empty: each scenario's own target
    endpoint: str | None = None  # for a url target
    repeats: int | None = Field(None, ge=1)  # every scenario's repeats (>= 5 for A/B verdicts)
    set: list[str] = Field(default_factory=list)  # --set overrides applied to every scenario
    history: str | None = None  # DuckDB path (relative to the working directory) or URL
    inventory: str | None = None  # hosts the night runs on (written by `provision`, if given)
    provision: str | None = None  # a provisioning spec: provision before, deprovision after
    deprovision: bool = True  # with `provision`: delete the group afterwards, also on failure
    # `harness lab up`'s inventory: its hosts stand in for the provisioned ones (same roles)
    lab_inventory: str | None = None
    contract: bool = True  # record client calls and diff them against the locked contracts
    conformance: ConformanceStep | None = None  # the conformance gate after the scenarios
    # `harness contract check-latest` after the scenarios: true replays every contract
    # scenario, a list only those (shipped names or paths beside the suite)
    check_latest: bool | list[str] = False

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, v: list[str]) -> list[str]:
        known = (*TARGET_NAMES, INVENTORY_TARGET)
        bad = [t for t in v if t not in known]
        if bad:
            raise ValueError(f"unknown target(s) {bad}: one of {', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _inventory_has_hosts(self) -> NightlySuite:
        wants = INVENTORY_TARGET in self.targets or (
            self.conformance is not None and self.conformance.target == INVENTORY_TARGET
        )
        if wants and not (self.inventory or self.provision or self.lab_inventory):
            raise ValueError("target inventory needs hosts: inventory, provision or lab_inventory")
        return self


def load_suite(path: Path) -> NightlySuite:
    return load_model(path, NightlySuite, what="a nightly suite")


def scenario_ref(suite_file: Path, name: str) -> str:
    """A scenario of the suite as `harness run` takes it: a path next to the suite file when
    there is one, else the name as given (a shipped scenario or a path from here)."""
    beside = suite_file.parent / name
    return str(beside) if beside.is_file() else name
