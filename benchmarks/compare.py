"""Old vs new: one benchmark module run from two checkouts, in alternating processes.

Run from the repo root (the new tree), against a checkout of the old one::

    git worktree add /work/wt/base-me pre-recut      # once (give it its own .venv)
    python benchmarks/compare.py cache --old /work/wt/base-me --rounds 3
    python benchmarks/compare.py ratelimit --old ../base --rows redisroles -- --rounds 5

Each round runs ``python -m benchmarks.<module> [ARGS after --]`` once in each
checkout, one after the other (never at the same time), alternating which
goes first (old-new, new-old, ...) so that a drift of the machine's load hits
both alike. Each checkout runs its own ``benchmarks/<module>.py`` with its own
tree on ``PYTHONPATH`` and, by default, its own ``.venv/bin/python`` (else the
interpreter running this script).

Every Markdown table the module prints is parsed: a row is its first cell, a
metric is a column (a cell holding several numbers, "49 / 102 (1.01x)", gives
one metric per number). Printed per table: each row's metric, the median of
the old runs and of the new ones with their spread (min-max), and new/old as
the median of the per-round ratios with their range. The verdict column reads
the metric's unit from its header: lower is better for times (µs, ms, wall),
higher for rates (/s); "slower" is worse than ``--threshold`` (5 %) in the
median ratio; counts (round trips, commands) should not change ("changed" if
they do); ratios computed inside a run ("vs ...", "1.01x") get no verdict.
The peers' rows (django-redis, channels_redis...) measure the same code in
both checkouts: their ratios show how much the machine drifted.

The conventions are in docs/benchmarks.md ("Old vs new").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(x)?")
HEADING = re.compile(r"^\s*#+\s*(.*?)\s*$")

# Unit of a metric, from its column header (first match wins).
LOWER_IS_BETTER = re.compile(
    r"µs|\bus\b|\bms\b|wall|latency|seconds|\btime\b|\(s\)|median|p50|p99", re.I
)
HIGHER_IS_BETTER = re.compile(r"/\s*s\b|per s(ec)?\b|throughput|ops/", re.I)
COUNTS = re.compile(
    r"round trips|cmds|commands|calls|passed|deliveries|hand-overs\b(?!/)|keys|entries", re.I
)
IN_RUN_RATIO = re.compile(r"^\s*vs\b|ratio", re.I)


@dataclass
class Table:
    """One Markdown table of one run: title, header, {row label: {metric: value}}."""

    title: str
    header: list[str]
    rows: dict[str, dict[str, float]] = field(default_factory=dict)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _numbers(cell: str) -> list[tuple[float, bool]]:
    """The numbers in a cell, each with whether it is written as a ratio (``1.01x``)."""
    return [
        (float(m.group(0).rstrip("x").replace(",", "")), m.group(1) is not None)
        for m in NUMBER.finditer(cell)
    ]


def _cell_metrics(column: str, cell: str) -> dict[str, float]:
    """One metric per number of a cell, named after the column.

    "get hit median / p99 (µs)" with "49 / 102 (1.01x)" gives "get hit median (µs)",
    "p99 (µs)" and "get hit median / p99 (µs) (x)" (the ratio the run computed).
    """
    found = _numbers(cell)
    if len(found) == 1:
        return {column: found[0][0]}
    plain = [value for value, ratio in found if not ratio]
    ratios = [value for value, ratio in found if ratio]
    unit = re.search(r"\s*(\([^()]*\))\s*$", column)
    parts = [p.strip() for p in column[: unit.start() if unit else None].split(" / ")]
    if len(parts) != len(plain):
        parts = [f"{column} [{k + 1}]" for k in range(len(plain))]
    elif unit:
        parts = [f"{p} {unit.group(1)}" for p in parts]
    metrics = dict(zip(parts, plain, strict=True))
    for k, value in enumerate(ratios):
        metrics[f"{column} (x{'' if len(ratios) == 1 else k + 1})"] = value
    return metrics


def parse_tables(output: str) -> list[Table]:
    """Every Markdown table in a benchmark's output, titled by the heading or line above it."""
    tables: list[Table] = []
    lines = output.splitlines()
    heading = caption = ""  # since the previous table
    i = 0
    while i < len(lines):
        line = lines[i]
        is_table = (
            line.lstrip().startswith("|")
            and i + 1 < len(lines)
            and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1])
        )
        if not is_table:
            if match := HEADING.match(line):
                heading = match.group(1)
            elif line.strip():
                caption = line.strip()[:80]
            i += 1
            continue
        header = _cells(line)
        title = heading or caption or f"table {len(tables) + 1}"
        table = Table(title=title, header=header)
        i += 2
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            cells = _cells(lines[i])
            label = cells[0]
            n = 2
            while label in table.rows:  # a repeated label: keep both
                label = f"{cells[0]} #{n}"
                n += 1
            metrics: dict[str, float] = {}
            for column, cell in zip(header[1:], cells[1:], strict=False):
                metrics.update(_cell_metrics(column, cell))
            table.rows[label] = metrics
            i += 1
        tables.append(table)
        heading = caption = ""
    return tables


def direction(metric: str) -> str:
    """``lower``, ``higher``, ``count`` or ``ratio`` (no verdict) for a metric's header."""
    if re.search(r"\(x\d*\)$", metric) or IN_RUN_RATIO.search(metric):
        return "ratio"
    if HIGHER_IS_BETTER.search(metric):
        return "higher"
    if LOWER_IS_BETTER.search(metric):
        return "lower"
    if COUNTS.search(metric):
        return "count"
    return "ratio"


def run_once(checkout: Path, python: str, module: str, args: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env["PYTHONPATH"] = str(checkout)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [python, "-m", f"benchmarks.{module}", *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(
            f"benchmarks.{module} failed in {checkout} (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def python_of(checkout: Path, given: str | None) -> str:
    if given:
        return given
    venv = checkout / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def verdict(kind: str, ratio: float, threshold: float) -> str:
    if kind == "ratio":
        return ""
    if kind == "count":
        return "" if abs(ratio - 1) < 1e-9 else "changed"
    worse = ratio - 1 if kind == "lower" else 1 - ratio
    if worse > threshold:
        return "**slower**"
    if worse < -threshold:
        return "faster"
    return "same"


def compare(
    runs: dict[str, list[list[Table]]],
    *,
    rows: re.Pattern[str] | None,
    metrics: re.Pattern[str] | None,
    threshold: float,
) -> tuple[str, list[dict[str, object]]]:
    """The report (Markdown) and its rows as dicts (for --json)."""
    old_runs, new_runs = runs["old"], runs["new"]
    out: list[str] = []
    records: list[dict[str, object]] = []
    n_tables = max(len(r) for r in old_runs + new_runs)
    for t in range(n_tables):
        old_tables = [r[t] for r in old_runs if t < len(r)]
        new_tables = [r[t] for r in new_runs if t < len(r)]
        if not old_tables or not new_tables:
            side = "old" if old_tables else "new"
            title = (old_tables or new_tables)[0].title
            out.append(f"\n### {title}\n\n(only the {side} checkout prints this table)\n")
            continue
        title = new_tables[0].title
        out.append(f"\n### {title}\n")
        out.append(
            "| row | metric | old median (min-max) | new median (min-max) | new/old (range) | |"
        )
        out.append("|---|---|---:|---:|---:|---|")
        labels = list(dict.fromkeys([*new_tables[0].rows, *old_tables[0].rows]))
        for label in labels:
            if rows and not rows.search(label):
                continue
            names = list(
                dict.fromkeys(
                    [*new_tables[0].rows.get(label, {}), *old_tables[0].rows.get(label, {})]
                )
            )
            for name in names:
                if metrics and not metrics.search(name):
                    continue
                olds = [tb.rows.get(label, {}).get(name) for tb in old_tables]
                news = [tb.rows.get(label, {}).get(name) for tb in new_tables]
                o = [v for v in olds if v is not None]
                n = [v for v in news if v is not None]
                if not o or not n:
                    which = "new" if n else "old"
                    out.append(f"| {label} | {name} | | | | only in {which} |")
                    continue
                # Per-round ratios: round i's new run beside round i's old one.
                paired = [b / a for a, b in zip(olds, news, strict=False) if a and b is not None]
                if not paired:
                    continue
                ratio = statistics.median(paired)
                kind = direction(name)
                mark = verdict(kind, ratio, threshold)
                out.append(
                    f"| {label} | {name} | {_fmt(statistics.median(o))} ({_fmt(min(o))}-"
                    f"{_fmt(max(o))}) | {_fmt(statistics.median(n))} ({_fmt(min(n))}-"
                    f"{_fmt(max(n))}) | {ratio:.2f}x ({min(paired):.2f}-{max(paired):.2f}) "
                    f"| {mark} |"
                )
                records.append(
                    {
                        "table": title,
                        "row": label,
                        "metric": name,
                        "kind": kind,
                        "old": o,
                        "new": n,
                        "ratios": paired,
                        "ratio": ratio,
                        "verdict": mark.strip("*"),
                    }
                )
    return "\n".join(out), records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Arguments after -- go to the benchmark module.",
    )
    parser.add_argument("module", help="benchmark module: cache, sessions, ratelimit, ...")
    parser.add_argument("--old", type=Path, required=True, help="the old checkout (e.g. pre-recut)")
    parser.add_argument("--new", type=Path, default=HERE, help="the new checkout (default: this)")
    parser.add_argument("--old-python", help="interpreter of the old checkout (its .venv)")
    parser.add_argument("--new-python", help="interpreter of the new checkout (its .venv)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per checkout (default 3)")
    parser.add_argument("--rows", help="only rows whose label matches this regex")
    parser.add_argument("--metrics", help="only metrics whose column matches this regex")
    parser.add_argument("--threshold", type=float, default=0.05, help="verdict margin (0.05)")
    parser.add_argument("--save", type=Path, help="keep each run's output in this directory")
    parser.add_argument("--json", type=Path, help="also write the compared rows here")
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    opts = parser.parse_args(argv)
    module = opts.module.removeprefix("benchmarks.").removesuffix(".py")
    sides = {
        "old": (opts.old.resolve(), python_of(opts.old.resolve(), opts.old_python)),
        "new": (opts.new.resolve(), python_of(opts.new.resolve(), opts.new_python)),
    }
    for side, (checkout, python) in sides.items():
        if not (checkout / "benchmarks" / f"{module}.py").exists():
            parser.error(f"{side}: no benchmarks/{module}.py in {checkout}")
        print(f"{side}: {checkout} ({_git_describe(checkout)}), {python}", file=sys.stderr)

    if opts.save:
        opts.save.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[list[Table]]] = {"old": [], "new": []}
    started = time.monotonic()
    for r in range(opts.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for side in order:
            checkout, python = sides[side]
            t0 = time.monotonic()
            output = run_once(checkout, python, module, extra)
            print(
                f"round {r + 1}/{opts.rounds} {side}: {time.monotonic() - t0:.0f} s",
                file=sys.stderr,
            )
            if opts.save:
                (opts.save / f"{module}-{side}-{r + 1}.txt").write_text(output)
            tables = parse_tables(output)
            if not tables:
                sys.exit(f"benchmarks.{module} printed no Markdown table in {checkout}")
            runs[side].append(tables)

    report, records = compare(
        runs,
        rows=re.compile(opts.rows) if opts.rows else None,
        metrics=re.compile(opts.metrics) if opts.metrics else None,
        threshold=opts.threshold,
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"benchmarks.{module}: old = {_git_describe(sides['old'][0])}, new = "
        f"{_git_describe(sides['new'][0])}; {opts.rounds} rounds, alternating; "
        f"{' '.join(extra) or 'default arguments'}; {time.monotonic() - started:.0f} s; "
        f"load average at the end {load:.1f}"
    )
    print(report)
    if opts.json:
        opts.json.write_text(json.dumps(records, indent=2))
    slower = [r for r in records if r["verdict"] == "slower"]
    return 1 if slower else 0


def _git_describe(checkout: Path) -> str:
    try:
        proc = subprocess.run(
            ["git", "-C", str(checkout), "describe", "--tags", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    return proc.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
