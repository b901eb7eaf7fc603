"""Presenting benchmark results: the text table, Markdown, and the ratio chart."""

from typing import Any, Dict, List, Optional

_OPS = ("dumps", "loads")


def _three_digits(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_time(seconds: float) -> str:
    """``0.0000123`` -> ``"12.3 us"``."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{_three_digits(seconds / scale)} {unit}"
    return f"{_three_digits(seconds / 1e-9)} ns"


def format_ratio(ratio: Optional[float]) -> str:
    if ratio is None:
        return "n/a"
    if ratio >= 0.1:
        return _three_digits(ratio) + "x"
    return f"{ratio:.3f}x"


def format_size_ratio(ratio: Optional[float]) -> str:
    """Like :func:`format_ratio`, with a third decimal near 1 ("at most cloudpickle's size"
    must not round to a tie)."""
    if ratio is not None and 0.95 <= ratio < 1.05 and ratio != 1.0:
        return f"{ratio:.3f}x"
    return format_ratio(ratio)


def format_size(row: Dict[str, Any]) -> str:
    if row.get("size") is None:
        return ""
    text = str(row["size"])
    oob = row.get("oob_bytes") or 0
    if oob:
        text += f" +{oob / 1e6:.1f}MB oob"
    return text


def _cells(row: Dict[str, Any], op: str) -> List[str]:
    """time, vs cloudpickle, vs pickle, vs floor, size, size / cloudpickle's, note."""
    status = row["status"]
    if status != "ok":
        label = "n/a" if status == "n/a" else "FAILED"
        note = row["note"] if op == "dumps" else ""
        return [label, "", "", "", "", "", note]
    timing = row.get(op)
    if timing is None:
        return ["-", "", "", "", "", "", ""]
    dumps = op == "dumps"
    return [format_time(timing["median_s"]), format_ratio(timing.get("ratio_cloudpickle")),
            format_ratio(timing.get("ratio_pickle")), _floor_ratio(timing),
            format_size(row) if dumps else "",
            format_size_ratio(row.get("size_ratio_cloudpickle")) if dumps else "", ""]


def _floor_ratio(timing: Dict[str, Any]) -> str:
    ratio = timing.get("ratio_floor")
    return "" if ratio is None else format_ratio(ratio)


def _rows_by_workload(result: Dict[str, Any]) -> List[tuple]:
    out = []
    for w in result["workloads"]:
        rows = [r for r in result["results"] if r["workload"] == w["name"]]
        out.append((w, rows))
    return out


def _header(result: Dict[str, Any]) -> List[str]:
    meta = result["meta"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    lines = [
        f"Python {meta['python']} on {meta['platform']} ({meta['cpus']} cpus); {versions}",
        f"{meta['repeats']} rounds, median per op; samples >= {meta['min_sample_s']}s; "
        f"scale {meta['scale']}; protocol {meta['protocol']}. "
        "Ratios: median over the rounds of time / baseline time in the same round (below 1 "
        "is faster); vs floor: the same against marshal-floor. Size: bytes of one pickle; "
        "size/cp: size / cloudpickle's size.",
    ]
    for t in result["targets"]:
        if not t["available"]:
            lines.append(f"{t['name']}: skipped ({t['note']})")
    for t in result["targets"]:
        if t["available"] and t.get("loads_via"):
            lines.append(f"{t['name']} loads with {t['loads_via']}")
    return lines


_HEAD = ["op", "target", "time/op", "vs cloudpickle", "vs pickle", "vs floor", "size",
         "size/cp"]


def format_table(result: Dict[str, Any]) -> str:
    """The results as a plain-text table, then the function workloads against the floor."""
    widths = [6, 21, 10, 14, 9, 8, 18, 7]
    n = len(widths)

    def line(cells: List[str]) -> str:
        parts = [cells[0].ljust(widths[0]), cells[1].ljust(widths[1])]
        parts += [c.rjust(w) for c, w in zip(cells[2:n], widths[2:], strict=True)]
        text = "  ".join(parts)
        if len(cells) > n and cells[n]:
            text += "  " + cells[n]
        return text.rstrip()

    out = _header(result) + [""]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out.append(line(_HEAD))
    out.append(rule)
    for w, rows in _rows_by_workload(result):
        if w.get("skipped"):
            out.append(f"{w['name']}: skipped ({w['skipped']})")
            out.append(rule)
            continue
        calls = f", {w['calls']:,} calls per op" if w["calls"] > 1 else ""
        out.append(f"{w['name']}: {w['description']}{calls}")
        for op in _OPS:
            for row in rows:
                if row["status"] != "ok" and op == "loads":
                    continue
                out.append(line([op, row["target"]] + _cells(row, op)))
        out.append(rule)
    summary = floor_summary(result)
    if summary:
        head = ["workload", "target", "dumps/floor", "loads/floor", "size", "cloudpickle",
                "size/cp"]
        sw = [max(len(head[i]), *(len(r[i]) for r in summary)) for i in range(len(head))]
        out += ["", "Function workloads against the marshal floor and cloudpickle's size:", ""]
        out.append("  ".join(h.ljust(w) if i < 2 else h.rjust(w)
                             for i, (h, w) in enumerate(zip(head, sw, strict=True))))
        for r in summary:
            out.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(r, sw, strict=True))).rstrip())
    return "\n".join(out)


def floor_summary(result: Dict[str, Any]) -> List[List[str]]:
    """Per function workload and fastfnpickle target: dumps/floor, loads/floor, its size,
    cloudpickle's size and their ratio (issue 14's targets, read off one run)."""
    out = []
    for w, rows in _rows_by_workload(result):
        if w.get("skipped") or w.get("family") != "functions":
            continue
        by_target = {r["target"]: r for r in rows}
        cp = by_target.get("cloudpickle") or {}
        cp_size = format_size(cp) if cp.get("status") == "ok" else "n/a"
        for row in rows:
            if not row["target"].startswith("fastfnpickle") or row["status"] != "ok":
                continue
            out.append([w["name"], row["target"],
                        format_ratio((row.get("dumps") or {}).get("ratio_floor")),
                        format_ratio((row.get("loads") or {}).get("ratio_floor")),
                        format_size(row), cp_size,
                        format_size_ratio(row.get("size_ratio_cloudpickle"))])
    return out


def format_markdown(result: Dict[str, Any]) -> str:
    """The results as a Markdown table (for an issue or RESULTS.md)."""
    out = [line for line in _header(result)]
    out = ["- " + line for line in out] + [""]
    out.append("| workload | op | target | time/op | vs cloudpickle | vs pickle | vs floor | "
               "size (B) | size/cp |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for w, rows in _rows_by_workload(result):
        if w.get("skipped"):
            out.append(f"| {w['name']} | | | skipped: {w['skipped']} | | | | | |")
            continue
        for op in _OPS:
            for row in rows:
                if row["status"] != "ok" and op == "loads":
                    continue
                time_, vs_cp, vs_p, vs_floor, size, size_cp, note = _cells(row, op)
                if note:
                    time_ = f"{time_} ({note.replace('|', '/')})"
                out.append(f"| {w['name']} | {op} | {row['target']} | {time_} | {vs_cp} | "
                           f"{vs_p} | {vs_floor} | {size} | {size_cp} |")
    summary = floor_summary(result)
    if summary:
        out += ["", "| workload | target | dumps / floor | loads / floor | size (B) | "
                    "cloudpickle (B) | size / cloudpickle |",
                "|---|---|---:|---:|---:|---:|---:|"]
        out += ["| " + " | ".join(r) + " |" for r in summary]
    return "\n".join(out)


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(result: Dict[str, Any], path: str) -> None:
    """Grouped bars: per workload, each target's time relative to cloudpickle (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [w["name"] for w in result["workloads"] if not w.get("skipped")]
    targets = [t["name"] for t in result["targets"]
               if t["available"] and t["name"] != "cloudpickle"]
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 0.9 * len(names) + 3), 9), sharex=True)
    width = 0.8 / max(1, len(targets))
    for ax, op in zip(axes, _OPS, strict=True):
        for k, target in enumerate(targets):
            xs, ys = [], []
            for i, name in enumerate(names):
                for row in result["results"]:
                    if row["workload"] == name and row["target"] == target:
                        ratio = (row.get(op) or {}).get("ratio_cloudpickle")
                        if row["status"] == "ok" and ratio:
                            xs.append(i - 0.4 + width * (k + 0.5))
                            ys.append(ratio)
            ax.bar(xs, ys, width, label=target)
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_yscale("log")
        ax.set_ylabel(f"{op} time / cloudpickle")
        ax.set_title(f"{op} (below the line: faster than cloudpickle)")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[-1].set_xticks(range(len(names)))
    axes[-1].set_xticklabels(names, rotation=35, ha="right")
    axes[0].legend(fontsize="small", ncol=3)
    meta = result["meta"]
    fig.suptitle(f"fastfnpickle bench, Python {meta['python']}, {meta['repeats']} rounds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
