"""`harness pilot`, `harness pilot verify`, `harness deck` and `harness charts`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.cli_common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from harness.scenario import ScenarioError

_RUN_DIRS = click.argument(
    "run_dirs",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)


def _verify(args: tuple[str, ...]) -> None:
    from harness.report.pilot import verify

    if len(args) < 2:
        raise click.UsageError("usage: harness pilot verify PILOT.pdf RUN_DIR...")
    try:
        lines = verify(Path(args[0]), [Path(a) for a in args[1:]])
    except (ValueError, FileNotFoundError, OSError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_BAD_INPUT)
    for line in lines:
        click.echo(line)
    bad = [line for line in lines if not line.startswith("OK")]
    click.echo(
        f"{len(bad)} of {len(lines)} evidence file(s) differ from the document"
        if bad
        else f"all {len(lines)} evidence file(s) match the document"
    )
    sys.exit(EXIT_FAILED if bad else EXIT_OK)


@click.command("pilot")
@click.argument("args", nargs=-1, required=True, metavar="RUN_DIR... | verify PDF RUN_DIR...")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("pilot.pdf"),
    show_default=True,
    help="The PDF; the same document is written as HTML beside it (.html).",
)
@click.option(
    "--pilot",
    "pilot_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="pilot.yaml: customer, scope, criteria with owners and weights, sign-off "
    "[default: each run's own criteria].",
)
def pilot(args: tuple[str, ...], out: Path, pilot_file: Path | None) -> None:
    """The exit-criteria document of RUN_DIR... (run directories, and `harness conformance`
    output directories, whose gate becomes one criterion per target) as PDF + HTML: every
    criterion PASS, FAIL or INVALID (the validity rule named), environment, sign-off and
    evidence hashes.

    `harness pilot verify PILOT.pdf RUN_DIR...` recomputes the evidence hashes: exit 1 when
    any file changed or is missing. Exit status otherwise: 0 overall PASS, 1 not."""
    from harness.report.pilot import load_pilot, write

    if args[0] == "verify":
        _verify(args[1:])
    run_dirs = [Path(a) for a in args]
    for d in run_dirs:
        if not (d / "results.parquet").is_file() and not (d / "conformance.json").is_file():
            click.echo(
                f"{d}: not a run directory (no results.parquet) nor a conformance output "
                "(no conformance.json)",
                err=True,
            )
            sys.exit(EXIT_BAD_INPUT)
    try:
        spec = load_pilot(pilot_file)
    except ScenarioError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_BAD_INPUT)
    doc = write(run_dirs, out, spec)
    for row in doc["rows"]:
        reason = f"  ({row.reason})" if row.reason else ""
        click.echo(
            f"{row.status:<8} {row.name}: {row.requirement}, observed {row.observed}{reason}"
        )
    c = doc["counts"]
    click.echo(
        f"overall: {doc['overall']} ({c['PASS']} PASS, {c['FAIL']} FAIL, {c['INVALID']} INVALID)"
    )
    click.echo(f"pilot: {out} ({out.with_suffix('.html')})")
    sys.exit(EXIT_OK if doc["overall"] == "PASS" else EXIT_FAILED)


def _labelled(run_dirs: tuple[Path, ...], labels: tuple[str, ...]) -> list[str] | None:
    """--label NAME=RUN (RUN: a run directory or its name) -> one label per run, in order."""
    if not labels:
        return None
    names = {}
    for item in labels:
        name, sep, run = item.partition("=")
        if not sep:
            raise click.UsageError(f"--label {item!r}: expected NAME=RUN")
        names[Path(run).name] = name
    return [names.get(d.name, d.name) for d in run_dirs]


_LABEL = click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="NAME=RUN",
    help="Name a run in charts and slides instead of its run id (repeatable).",
)


@click.command("deck")
@_RUN_DIRS
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("deck.pptx"))
@_LABEL
def deck(run_dirs: tuple[Path, ...], out: Path, labels: tuple[str, ...]) -> None:
    """A benchmark deck (PowerPoint, native editable charts) from RUN_DIR...; runs whose
    scenario, dataset or hardware differ are marked NOT COMPARABLE on every chart slide."""
    from harness.report.deck import write_deck

    result = write_deck(list(run_dirs), out, _labelled(run_dirs, labels))
    for line in result["unfair"]:
        click.echo(f"warning: not comparable: {line}", err=True)
    click.echo(f"deck: {out} ({result['slides']} slides)")


@click.command("charts")
@_RUN_DIRS
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("charts"))
@_LABEL
def charts(run_dirs: tuple[Path, ...], out: Path, labels: tuple[str, ...]) -> None:
    """The deck's charts as PNG and SVG files with captions (captions.md) in --out."""
    from harness.report.charts import write_charts

    written = write_charts(list(run_dirs), out, _labelled(run_dirs, labels))
    for path in written:
        click.echo(str(path))
