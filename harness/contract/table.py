"""Contracts as readable tables: Markdown for fixtures/contracts/, HTML for reports."""

from __future__ import annotations

from html import escape

from harness.contract.model import Contract, Operation

COLUMNS = (
    "operation",
    "call",
    "when used",
    "scenarios (steps)",
    "count",
    "headers",
    "query",
    "values",
    "status",
)


def _cells(op: Operation) -> list[str]:
    call = (
        f"{op.method} {op.path}"
        + (f"?restype={op.restype}" if op.restype else "")
        + (f"{'&' if op.restype else '?'}comp={op.comp}" if op.comp else "")
    )
    values = "; ".join(f"{k}={','.join(v)}" for k, v in op.values.items())
    return [
        op.operation,
        call,
        ", ".join(op.used_in),
        "; ".join(f"{sc} ({', '.join(steps)})" for sc, steps in op.scenarios.items()),
        str(op.count),
        ", ".join(op.headers),
        ", ".join(op.params),
        values,
        ", ".join(map(str, op.statuses)),
    ]


def to_markdown(contract: Contract) -> str:
    lines = [f"# {contract.tool} {contract.version}", ""]
    lines.append(
        f"Recorded from {'scenarios' if len(contract.scenarios) > 1 else 'scenario'} "
        + ", ".join(f"`{s}`" for s in contract.scenarios)
        + f" against `{contract.target}` at "
        f"{contract.recorded_at}. Locked in `{contract.slug}.yaml`; every scenario run "
        "diffs its calls against it."
    )
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for op in contract.operations:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(op)) + " |")
    return "\n".join(lines) + "\n"


def to_html(contracts: list[Contract]) -> str:
    parts = []
    for contract in contracts:
        parts.append(f"<h3>{escape(contract.tool)} {escape(contract.version)}</h3>")
        parts.append(
            "<table><tr>" + "".join(f'<th class="text">{c}</th>' for c in COLUMNS) + "</tr>"
        )
        for op in contract.operations:
            parts.append(
                "<tr>" + "".join(f'<td class="text">{escape(c)}</td>' for c in _cells(op)) + "</tr>"
            )
        parts.append("</table>")
    return "\n".join(parts)
