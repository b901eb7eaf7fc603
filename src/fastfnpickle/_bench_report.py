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


def format_size(row: Dict[str, Any]) -> str:
    if row.get("size") is None:
        return ""
    text = str(row["size"])
    oob = row.get("oob_bytes") or 0
    if oob:
        text += f" +{oob / 1e6:.1f}MB oob"
    return text


def _cells(row: Dict[str, Any], op: str) -> List[str]:
    """time, vs cloudpickle, vs pickle, size, note."""
    status = row["status"]
    if status != "ok":
        label = "n/a" if status == "n/a" else "FAILED"
        note = row["note"] if op == "dumps" else ""
        return [label, "", "", "", note]
    timing = row.get(op)
    if timing is None:
        return ["-", "", "", "", ""]
    return [format_time(timing["median_s"]), format_ratio(timing.get("ratio_cloudpickle")),
            format_ratio(timing.get("ratio_pickle")), format_size(row) if op == "dumps" else "",
            ""]


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
        "Ratios: time / baseline time (below 1 is faster). Size: bytes of one pickle.",
    ]
    for t in result["targets"]:
        if not t["available"]:
            lines.append(f"{t['name']}: skipped ({t['note']})")
    return lines


def format_table(result: Dict[str, Any]) -> str:
    """The results as a plain-text table."""
    widths = [6, 21, 10, 15, 10, 18]
    head = ["op", "target", "time/op", "vs cloudpickle", "vs pickle", "size"]

    def line(cells: List[str]) -> str:
        parts = [cells[0].ljust(widths[0]), cells[1].ljust(widths[1])]
        parts += [c.rjust(w) for c, w in zip(cells[2:6], widths[2:])]
        text = "  ".join(parts)
        if len(cells) > 6 and cells[6]:
            text += "  " + cells[6]
        return text.rstrip()

    out = _header(result) + [""]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out.append(line(head))
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
    return "\n".join(out)


def format_markdown(result: Dict[str, Any]) -> str:
    """The results as a Markdown table (for an issue or RESULTS.md)."""
    out = [line for line in _header(result)]
    out = ["- " + line for line in out] + [""]
    out.append("| workload | op | target | time/op | vs cloudpickle | vs pickle | size (B) |")
    out.append("|---|---|---|---:|---:|---:|---:|")
    for w, rows in _rows_by_workload(result):
        if w.get("skipped"):
            out.append(f"| {w['name']} | | | skipped: {w['skipped']} | | | |")
            continue
        for op in _OPS:
            for row in rows:
                if row["status"] != "ok" and op == "loads":
                    continue
                time_, vs_cp, vs_p, size, note = _cells(row, op)
                if note:
                    time_ = f"{time_} ({note.replace('|', '/')})"
                out.append(f"| {w['name']} | {op} | {row['target']} | {time_} | {vs_cp} | "
                           f"{vs_p} | {size} |")
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
    for ax, op in zip(axes, _OPS):
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
