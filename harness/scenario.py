"""Scenarios are data: a YAML file validated into pydantic models before anything runs.

Errors name the file, the line and the field path, e.g.
``scenarios/x.yaml:14: steps[2].concurrency: Input should be a valid integer``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness import criteria as criteria_mod
from harness import datasets
from harness.drivers.base import OPERATIONS
from harness.paths import ROOT

if TYPE_CHECKING:
    from harness.cluster.inventory import Inventory

SCENARIO_DIR = ROOT / "scenarios"
TARGET_KINDS = ("reference", "azurite", "url", "nginx", "aiohttp-floor")
# `hosts:` of a step: "clients" (every client host), an inventory role, or a count
HOST_ROLES = ("server", "client", "load", "lake")
SHARES = ("split", "same")  # options.share of a `hosts:` step


class ScenarioError(ValueError):
    """A scenario that cannot run: every problem as `FILE:LINE: field: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def available_drivers() -> tuple[str, ...]:
    """The driver names a step may use (no driver module is imported)."""
    from harness.drivers import REGISTRY

    return tuple(REGISTRY)


def driver_operations(name: str) -> tuple[str, ...]:
    """The operations of one driver (imports that driver's module, never its client library)."""
    from harness.drivers import REGISTRY

    return tuple(REGISTRY[name].operations) if name in REGISTRY else OPERATIONS


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileGroup(_Model):
    """`count` files of one size, of sizes uniform in [size_min, size_max], or lognormal around
    size_mean (see harness.datasets); dir_depth nests them in sub-directories."""

    count: int = Field(default=1, ge=1)
    size: int | None = None
    size_min: int | None = None
    size_max: int | None = None
    size_mean: int | None = None
    size_sigma: float | None = Field(default=None, gt=0)
    dir_depth: int = Field(default=0, ge=0)
    prefix: str = ""  # sub-directory inside the dataset

    @field_validator("size", "size_min", "size_max", "size_mean", mode="before")
    @classmethod
    def _sizes(cls, v: Any) -> int | None:
        if v is None:
            return None
        if isinstance(v, bool):
            raise ValueError("a size is a number of bytes or a string like '64KiB'")
        try:
            return datasets.parse_size(v)
        except datasets.DatasetError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one_distribution(self) -> FileGroup:
        ranged = self.size_min is not None and self.size_max is not None
        if self.size is None and self.size_mean is None and not ranged:
            raise ValueError("give size, size_min and size_max, or size_mean")
        if ranged and self.size_max < self.size_min:  # type: ignore[operator]
            raise ValueError("size_max must be >= size_min")
        return self


class DatasetSpec(_Model):
    name: str
    description: str = ""
    seed: int = 0
    files: list[FileGroup] = Field(min_length=1)


class TargetSpec(_Model):
    """Where steps run unless a step names its own targets; CLI flags override it."""

    kind: Literal["reference", "azurite", "url", "nginx", "aiohttp-floor", "inventory"] = (
        "reference"
    )
    endpoint: str | None = None  # for kind "url"; "inventory": the file (default: --inventory)
    workers: int = Field(default=1, ge=1)  # reference façade worker processes
    options: dict[str, Any] = Field(default_factory=dict)  # extra server flags / settings

    @model_validator(mode="after")
    def _tls_option(self) -> TargetSpec:
        # `options.tls: true` serves the reference façade over https with the lab CA;
        # `options.identity: true` adds the lab token service, trusted for bearer tokens
        for name in ("tls", "identity"):
            value = self.options.get(name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"options.{name}: must be true or false")
            if value and self.kind != "reference":
                raise ValueError(
                    f"options.{name}: only the reference target serves "
                    f"{'https' if name == 'tls' else 'bearer tokens'}, not {self.kind}"
                )
        return self


class Step(_Model):
    name: str = ""  # defaults to "<driver>-<operation>[-N]"
    driver: str
    operation: str
    dataset: str | None = None
    container: str | None = None  # defaults to the scenario's container
    prefix: str = ""
    concurrency: int = Field(default=16, ge=1)
    block_size_mib: int = Field(default=8, ge=1)
    repeats: int | None = Field(default=None, ge=1)
    warmup: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)
    verify: bool = True  # downloads are checked against the dataset manifest
    # target kinds, or names from the scenario's ``targets`` (e.g. a "lake" beside the default)
    target: list[str] | None = None
    source_step: str | None = None  # for "copy": the step whose container/prefix is the source
    source_target: str | None = None  # for "copy": the target holding the source (default: own)
    source_container: str | None = None  # for "copy" without a source_step
    # Run the client on an inventory's hosts at once (harness.cluster.remote): "clients" (every
    # host with role client), a role name, or a count (the first N client hosts).
    hosts: str | int | None = None

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: str | int | None) -> str | int | None:
        if isinstance(v, bool) or (isinstance(v, int) and v < 1):
            raise ValueError("a count of client hosts is 1 or more")
        if isinstance(v, str) and v not in ("clients", *HOST_ROLES):
            raise ValueError(
                f"unknown role {v!r}; valid: clients, {', '.join(HOST_ROLES)} or a count"
            )
        return v

    @field_validator("target", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        drivers = available_drivers()
        if v not in drivers:
            raise ValueError(f"unknown driver {v!r}; valid: {', '.join(sorted(drivers))}")
        return v

    @model_validator(mode="after")
    def _known_operation(self) -> Step:
        ops = driver_operations(self.driver)
        if self.operation not in ops:
            valid = ", ".join(ops)
            raise ValueError(
                f"driver {self.driver!r} has no operation {self.operation!r}; valid: {valid}"
            )
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        share = self.options.get("share")
        if share is not None and (self.hosts is None or share not in SHARES):
            raise ValueError(
                f"options.share: {share!r} is one of {', '.join(SHARES)}, for a step with hosts"
            )
        return self


class Criterion(_Model):
    expect: str
    step: str | None = None
    driver: str | None = None
    target: str | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"expect": v} if isinstance(v, str) else v

    @field_validator("expect")
    @classmethod
    def _parses(cls, v: str) -> str:
        criteria_mod.parse(v)
        return v

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        scope = "/".join(x for x in (self.step, self.driver, self.target) if x) or "every step"
        return f"{scope}: {self.expect}"


class Scenario(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    target: TargetSpec = Field(default_factory=TargetSpec)
    # Further targets by name, started beside the default one (a "lake" for an "edge", ...)
    targets: dict[str, TargetSpec] = Field(default_factory=dict)
    container: str = ""  # default container of every step (derived from the name when empty)
    datasets: list[DatasetSpec] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    kpis: list[str] = Field(default_factory=lambda: ["throughput_mib_s", "ops_s", "failed"])
    criteria: list[Criterion] = Field(default_factory=list)
    repeats: int = Field(default=1, ge=1)
    warmup: int = Field(default=0, ge=0)
    timeout: float = Field(default=600.0, gt=0)
    # Repeats alternate targets (A B A B ...) instead of A A B B, so that a slow drift of the
    # machine during a step hits every target alike: what a comparison of targets needs.
    interleave: bool = False
    # False: the targets' data roots are removed when the run ends (a benchmark's large blobs);
    # logs and configs stay.
    keep_data: bool = True

    @field_validator("kpis")
    @classmethod
    def _known_kpis(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if k not in criteria_mod.KPIS and not k.startswith("extra.")]
        if bad:
            raise ValueError(
                f"unknown KPI(s) {', '.join(bad)}; valid: {', '.join(criteria_mod.KPIS)}"
            )
        return v

    @model_validator(mode="after")
    def _resolve(self) -> Scenario:
        if not self.container:
            self.container = container_name(self.name)
        names = {d.name for d in self.datasets}
        seen: dict[str, int] = {}
        problems: list[str] = []
        for i, step in enumerate(self.steps):
            if not step.name:
                base = f"{step.driver}-{step.operation}"
                seen[base] = seen.get(base, 0) + 1
                step.name = base if seen[base] == 1 else f"{base}-{seen[base]}"
            step.container = step.container or self.container
            step.repeats = step.repeats or self.repeats
            step.warmup = self.warmup if step.warmup is None else step.warmup
            step.timeout = step.timeout or self.timeout
            for ref in [
                *(step.target or []),
                *([step.source_target] if step.source_target else []),
            ]:
                if ref not in TARGET_KINDS and ref not in self.targets:
                    problems.append(
                        f"steps[{i}].target: unknown target {ref!r}; valid: "
                        f"{', '.join([*TARGET_KINDS, *self.targets])}"
                    )
            # a `hosts:` step reaches the run's inventory target, or a named inventory target
            # of the same inventory (a lake on its `lake` hosts)
            if step.hosts is not None and any(
                ref not in self.targets or self.targets[ref].kind != "inventory"
                for ref in step.target or []
            ):
                problems.append(
                    f"steps[{i}].hosts: the client runs on the inventory's hosts against the "
                    "inventory target (or a named target of kind inventory): leave target out "
                    "and run with --target inventory"
                )
            if step.dataset is not None and step.dataset not in names:
                problems.append(
                    f"steps[{i}].dataset: unknown dataset {step.dataset!r}; "
                    f"defined: {', '.join(sorted(names)) or 'none'}"
                )
            if (
                step.operation in ("upload", "sync-up", "download", "sync-down")
                and not step.dataset
            ):
                problems.append(f"steps[{i}].dataset: operation {step.operation!r} needs a dataset")
        for name in self.targets:
            if name in TARGET_KINDS:
                problems.append(f"targets.{name}: a named target cannot reuse a target kind")
        step_names = [s.name for s in self.steps]
        dupes = sorted({n for n in step_names if step_names.count(n) > 1})
        if dupes:
            problems.append(f"steps: duplicate step names {', '.join(dupes)}")
        for i, crit in enumerate(self.criteria):
            if crit.step is not None and crit.step not in step_names:
                problems.append(
                    f"criteria[{i}].step: unknown step {crit.step!r}; "
                    f"steps: {', '.join(step_names)}"
                )
            expr = criteria_mod.parse(crit.expect)
            sides = f"{expr.numerator}+{expr.denominator}".split("+") if expr.is_ratio else []
            targets = [*TARGET_KINDS, *self.targets]
            if sides and not (set(sides) <= set(targets) or set(sides) <= set(step_names)):
                unknown = [n for n in sides if n not in targets and n not in step_names]
                what = f"unknown {', '.join(unknown)}" if unknown else "a mix of both"
                problems.append(
                    f"criteria[{i}].expect: a ratio compares two targets or two sets of steps, "
                    f"not {what} (targets {', '.join(targets)} | steps {', '.join(step_names)})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def dataset(self, name: str) -> DatasetSpec:
        return next(d for d in self.datasets if d.name == name)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


def hosts_problems(
    scenario: Scenario, path: Path, target: str, inventory: Inventory | None
) -> list[str]:
    """FILE:LINE problems of the ``hosts:`` steps for a run on ``target``: they need the
    inventory target, and the inventory must have the hosts they ask for."""
    from harness.cluster.remote import select_hosts

    steps = [(i, s) for i, s in enumerate(scenario.steps) if s.hosts is not None]
    if not steps:
        return []
    lines: dict[tuple[Any, ...], int] = {}
    try:
        _line_map(yaml.compose(path.read_text(), Loader=yaml.SafeLoader), (), lines)
    except (OSError, yaml.YAMLError):
        pass
    problems = []
    for i, step in steps:
        where = f"{_display(path)}:{_line_for(('steps', i, 'hosts'), lines)}: steps[{i}].hosts"
        if target != "inventory" or inventory is None:
            problems.append(
                f"{where}: runs the client on an inventory's hosts, so it needs "
                f"--target inventory --inventory FILE (this run's target is {target})"
            )
            continue
        try:
            select_hosts(inventory, step.hosts)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def container_name(text: str) -> str:
    """A valid container name (3-63 of [a-z0-9-], no leading/trailing/double dash) from text."""
    name = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")
    return (name or "harness").ljust(3, "0")[:63].rstrip("-")


# ---------------------------------------------------------------- loading with line numbers


def _line_map(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    """Record the 1-based line of every mapping key and sequence item under ``node``."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines[child] = key.start_mark.line + 1
            _line_map(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _line_map(item, (*path, i), lines)


def _yaml_field(text: str, line: int, context_line: int) -> str:
    """``"datasets[0].files: "``: the field a YAML syntax error at ``line`` sits in.

    The lines before the error are parsed on their own; the enclosing field is the last one
    that starts left of the bad line's indentation (a mis-indented line belongs to it). When
    nothing encloses it (e.g. an unclosed ``[`` at the top level), the key on the line where
    the parser's context began is named."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    bad = lines[line - 1]
    indent = len(bad) - len(bad.lstrip(" "))  # a sequence item's dash, else its key
    marks: dict[tuple[Any, ...], tuple[int, int]] = {}
    for end in range(line - 1, 0, -1):  # the longest prefix that parses
        try:
            node = yaml.compose("\n".join(lines[:end]), Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            continue
        if node is not None:
            _mark_map(node, (), marks)
        break
    enclosing = [
        (pos, path) for path, pos in marks.items() if path and pos[1] < indent and pos[0] < line
    ]
    if enclosing:
        path = max(enclosing, key=lambda item: (item[0], len(item[1])))[1]
        return f"{_field_path(path)}: "
    if 1 <= context_line <= len(lines):
        key = re.match(r"\s*(?:-\s+)?([^\s:#][^:#]*?):(?:\s|$)", lines[context_line - 1])
        if key:
            return f"{key.group(1)} (line {context_line}): "
    return ""


def _mark_map(
    node: yaml.Node, path: tuple[Any, ...], marks: dict[tuple[Any, ...], tuple[int, int]]
) -> None:
    """(line, column) of every mapping key and sequence item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            marks[child] = (key.start_mark.line + 1, key.start_mark.column)
            _mark_map(value, child, marks)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            # an item's column is its dash's: two left of its content
            marks[(*path, i)] = (item.start_mark.line + 1, max(0, item.start_mark.column - 2))
            _mark_map(item, (*path, i), marks)


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic inserts validator tags (e.g. "function-before[...]", "literal['x']") into locs.
    return tuple(p for p in loc if isinstance(p, int) or ("[" not in p and "(" not in p))


def resolve_path(name_or_path: str | Path) -> Path:
    """A scenario path, or the name of a shipped scenario (`smoke` -> scenarios/smoke.yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SCENARIO_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(p.stem for p in shipped_scenarios())
    raise ScenarioError([f"{name_or_path}: no such scenario file or shipped scenario ({names})"])


def shipped_scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=c` overrides; list items by index or by `name` (`steps.upload.concurrency=4`)."""
    for item in overrides:
        if "=" not in item:
            raise ScenarioError([f"--set {item}: expected key=value"])
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw else ""
        parts = key.strip().split(".")
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                idx = (
                    int(part)
                    if part.isdigit()
                    else next(
                        (
                            i
                            for i, x in enumerate(node)
                            if isinstance(x, dict) and x.get("name") == part
                        ),
                        None,
                    )
                )
                if idx is None or idx >= len(node):
                    raise ScenarioError(
                        [f"--set {item}: no list item {part!r} in {'.'.join(parts[:depth])}"]
                    )
                if last:
                    node[idx] = value
                node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ScenarioError(
                    [f"--set {item}: {'.'.join(parts[:depth])} is not a mapping or list"]
                )
    return data


def load(name_or_path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Load, override and validate a scenario; ScenarioError lists every problem with FILE:LINE."""
    return load_model(resolve_path(name_or_path), Scenario, overrides, "a scenario")


M = TypeVar("M", bound=BaseModel)


def load_model(
    path: Path, model: type[M], overrides: list[str] | None = None, what: str = "the file"
) -> M:
    """Any lab YAML file validated by a pydantic ``model``, with the scenario's error shape:
    ScenarioError lists every problem as FILE:LINE: field: message."""
    shown = _display(path)
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        context = getattr(exc, "context_mark", None)
        where = _yaml_field(text, line, context.line + 1 if context else line)
        raise ScenarioError(
            [f"{shown}:{line}: {where}invalid YAML: {getattr(exc, 'problem', exc)}"]
        ) from None
    if not isinstance(data, dict) or node is None:
        hint = " (name, steps, ...)" if model is Scenario else ""
        raise ScenarioError([f"{shown}:1: {what} is a YAML mapping{hint}"])
    lines: dict[tuple[Any, ...], int] = {}
    _line_map(node, (), lines)
    data = apply_overrides(data, overrides or [])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_problems(exc, lines, shown)) from None


def _problems(exc: ValidationError, lines: dict[tuple[Any, ...], int], shown: str) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]))
        message = err["msg"].removeprefix("Value error, ")
        # Cross-field problems raised at the top level carry their own field paths.
        if not loc and ": " in message:
            for part in message.split("; "):
                field, _, msg = part.partition(": ")
                problems.append(f"{shown}:{_line_for(_parse_path(field), lines)}: {field}: {msg}")
            continue
        problems.append(f"{shown}:{_line_for(loc, lines)}: {_field_path(loc)}: {message}")
    return problems


def _parse_path(field: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", field))


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def dump(scenario: Scenario) -> dict[str, Any]:
    """The resolved scenario as plain data (recorded in run.json)."""
    return scenario.model_dump(mode="json")
