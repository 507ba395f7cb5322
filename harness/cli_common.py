"""Pieces every command line of the harness shares: exit codes, loading a scenario, sizes,
``--out``, stamped run directories."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

if TYPE_CHECKING:
    from harness.scenario import Scenario


def load_scenario(scenario: str, overrides: tuple[str, ...] = ()) -> Scenario:
    """A validated scenario (path or shipped name, ``--set`` overrides applied); on a problem,
    every problem on stderr (file:line: field: message) and exit 2."""
    # Imported here, like SizeType's parser: commands that take no scenario skip pydantic.
    from harness.scenario import ScenarioError, load

    try:
        return load(scenario, list(overrides))
    except ScenarioError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(EXIT_BAD_INPUT)


def utc_stamp(now: datetime | None = None) -> str:
    """The UTC time stamp that names run directories: sortable, no separators to escape."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def run_dir_for(out: Path, name: str, now: datetime | None = None) -> Path:
    """``out/<stamp>-<name>``, numbered when two runs start in the same second (not created)."""
    stamp = utc_stamp(now)
    path = out / f"{stamp}-{name}"
    n = 1
    while path.exists():
        n += 1
        path = out / f"{stamp}-{name}-{n}"
    return path


def new_run_dir(out: Path, name: str) -> Path:
    """Create and return a fresh ``run_dir_for(out, name)``."""
    path = run_dir_for(out, name)
    path.mkdir(parents=True)
    return path


class SizeType(click.ParamType):
    """A byte count given as ``4096``, ``64KiB``, ``8MiB``, ``1GiB`` (or SI ``8MB``): the one
    size syntax of scenarios, datasets and every command."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        # Imported here: harness.datasets pulls numpy in, which a bare --help does not need.
        from harness.datasets import DatasetError, parse_size

        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except DatasetError as exc:
            self.fail(str(exc), param, ctx)


SIZE = SizeType()


def out_option(help: str = "parent of the run directory [default: reports/]") -> Callable[[F], F]:
    """``--out DIR`` (default None: the command's own default), a directory path."""
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=help,
    )


def cache_dir_option(
    help: str = "Where generated datasets are cached (env HARNESS_CACHE_DIR) [default: "
    "$XDG_CACHE_HOME/blob-facade-lab/datasets or ~/.cache/blob-facade-lab/datasets].",
) -> Callable[[F], F]:
    """``--cache-dir DIR`` (env HARNESS_CACHE_DIR; default None: the dataset cache)."""
    return click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="HARNESS_CACHE_DIR",
        default=None,
        help=help,
    )


def config_from_options(cls: type[C], options: dict[str, Any]) -> C:
    """A command's config dataclass from its click options (named like the fields): an option
    left unset (None) keeps the field's default; a repeatable option (a tuple) becomes a list."""
    values = {
        k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v is not None
    }
    return cls(**values)
