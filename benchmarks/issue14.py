"""The table of issue 14's "Must show" figures, side by side, from the figures one ``benchmarks.run`` measured.

Every row names the figure, Groundwire's value, what it is compared with (LangChain, the fp32 backend, the
code before, Chroma), the ratio or change, the issue's target and whether this run met it. A figure the run
did not measure (its option was 0, or its module failed) is a row that says so and which option measures it,
never a number from elsewhere. The targets are the issue's text; every value comes from ``figures``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Row", "format_table", "rows"]


@dataclass(frozen=True)
class Row:
    figure: str
    value: float | None
    unit: str
    versus: str = ""
    versus_value: float | None = None
    ratio: float | None = None
    ratio_kind: str = "x"  # "x": a ratio; "+": a difference
    target: str = ""
    met: bool | None = None
    missing: str = ""  # why there is no value (which option measures it)
    versus_unit: str | None = None  # None: the same unit as the value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _get(figures: dict[str, float], key: str) -> float | None:
    val = figures.get(key)
    return float(val) if isinstance(val, int | float) else None


def rows(figures: dict[str, float], ground_size: int, sync_docs: int, quality_docs: int, snapshot_size: int,
         file_only_size: int) -> list[Row]:
    """The issue-14 rows for one run's ``figures`` (the flat dict ``benchmarks.run`` prints)."""
    out: list[Row] = []
    g = f"{ground_size}"
    gw, lc = _get(figures, f"ground_p50_ms[groundwire,{g}]"), _get(figures, f"ground_p50_ms[langchain,{g}]")
    ratio = _get(figures, f"ground_ratio[langchain/groundwire,{g}]")
    if gw is None:
        out.append(Row(f"ground() p50, {g} chunks", None, "ms", missing="--ground-size N (0 skipped it)"))
    else:
        met = gw <= 25.0 and (ratio is not None and ratio >= 5.0)
        out.append(Row(f"ground() p50, {g} chunks", gw, "ms", "LangChain extractive", lc, ratio,
                       target="<= 25 ms and >= 5x", met=met))
        cpu, lcpu = (_get(figures, f"ground_cpu_ms_p50[groundwire,{g}]"),
                     _get(figures, f"ground_cpu_ms_p50[langchain,{g}]"))
        out.append(Row(f"ground() CPU per request, {g} chunks", cpu, "ms", "LangChain extractive", lcpu,
                       lcpu / cpu if cpu and lcpu else None))
    d = f"{sync_docs} docs"
    sync = _get(figures, f"sync_groundwire_chunks_per_s[{d}]")
    if sync is None:
        out.append(Row(f"sync chunks/s, defaults, SciFact {d}", None, "chunks/s",
                       missing="--sync-limit N (0 skipped it; or benchmarks.sync_speed failed: see above)"))
    else:
        ratio = _get(figures, f"sync_ratio_chunks_per_s[{d}]")
        out.append(Row(f"sync chunks/s, defaults, SciFact {d}", sync, "chunks/s", "LangChain loader+splitter+Chroma",
                       _get(figures, f"sync_langchain_chunks_per_s[{d}]"), ratio, target=">= 1.5x LangChain",
                       met=None if ratio is None else ratio >= 1.5))
        before = _get(figures, f"sync_groundwire_chunks_per_s[before,{d}]")
        if before is None:
            out.append(Row("sync chunks/s vs the code before", None, "chunks/s",
                           missing="--sync-before DIR (a checkout of the code before)"))
        else:
            out.append(Row("sync chunks/s vs the code before", sync, "chunks/s", "before (--sync-before)", before,
                           sync / before, target=">= 2.5x", met=sync / before >= 2.5))
        frac = _get(figures, f"sync_matmul_fraction[{d}]")
        out.append(Row("sync: fraction of the measured fp32 matmul limit", None if frac is None else 100 * frac, "%",
                       "matmul limit", _get(figures, f"sync_gemm_gflops[{d}]"), versus_unit="GFLOP/s",
                       missing="" if frac is not None else "benchmarks.sync_speed gave no matmul figure"))
        fp32 = _get(figures, f"sync_groundwire_chunks_per_s[fp32,{d}]")
        out.append(Row("backend auto (the default) vs fp32: sync chunks/s", sync, "chunks/s", "fp32 (backend onnx)",
                       fp32, sync / fp32 if fp32 else None, missing="" if fp32 else "the fp32 sync failed: see above"))
    q = f"{quality_docs} docs"
    fp, i8 = _get(figures, f"scifact_ndcg@10[onnx,{q}]"), _get(figures, f"scifact_ndcg@10[onnx-int8,{q}]")
    if fp is None or i8 is None:
        out.append(Row("int8 backend: SciFact nDCG@10 (through the product)", None, "",
                       missing="--quality-limit N (0 skipped it; or benchmarks.beir failed: see above)"))
    else:
        out.append(Row(f"int8 backend: SciFact nDCG@10 (through the product, {q})", i8, "", "fp32 (onnx)", fp,
                       i8 - fp, ratio_kind="+"))
    s = f"{snapshot_size}"
    file_s, chroma_s = (_get(figures, f"snapshot_load_s_per_100k[file,{s}]"),
                        _get(figures, f"snapshot_load_s_per_100k[chroma,{s}]"))
    if file_s is None:
        out.append(Row("snapshot load per 100k chunks", None, "s", missing="--snapshot-sizes N"))
    else:
        out.append(Row(f"snapshot load per 100k chunks (mapped file, {s})", file_s, "s", "from Chroma", chroma_s,
                       chroma_s / file_s if chroma_s and file_s else None, target="well under 1 s",
                       met=file_s < 1.0))
        out.append(Row(f"RSS after loading {s} chunks (mapped file)", _get(figures, f"rss_mb_after_load[file,{s}]"),
                       "MB", "from Chroma", _get(figures, f"rss_mb_after_load[chroma,{s}]")))
    f1 = f"{file_only_size}"
    rss1 = _get(figures, f"rss_mb_after_load[file,{f1},no-chroma]")
    if rss1 is None:
        out.append(Row("RSS at 1M synthetic chunks", None, "MB", missing="--snapshot-file-only N (0 skipped it)"))
    else:
        out.append(Row(f"RSS after loading {f1} chunks (mapped file)", rss1, "MB", "before the load",
                       _get(figures, f"rss_mb_before_load[{f1},no-chroma]")))
        out.append(Row(f"snapshot load per 100k chunks (mapped file, {f1})",
                       _get(figures, f"snapshot_load_s_per_100k[file,{f1},no-chroma]"), "s",
                       target="well under 1 s",
                       met=(_get(figures, f"snapshot_load_s_per_100k[file,{f1},no-chroma]") or 9.9) < 1.0))
    recalls = [v for k, v in figures.items() if k.startswith("recall@10[synthetic-")]
    if recalls:
        out.append(Row("fast path recall@10, worst selectivity (synthetic)", min(recalls), "", target=">= 0.99",
                       met=min(recalls) >= 0.99))
    return out


def _num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    text = f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return f"{text} {unit}".strip()


def format_table(table: list[Row]) -> str:
    """The rows as a fixed-width text table (one line a figure)."""
    head = ("figure", "groundwire", "compared with", "ratio", "target", "met")
    lines = []
    for r in table:
        if r.value is None:
            lines.append((r.figure, "not measured", r.missing, "", r.target, ""))
            continue
        ratio = "" if r.ratio is None else (f"{r.ratio:+.4f}" if r.ratio_kind == "+" else f"{r.ratio:.2f}x")
        unit = r.unit if r.versus_unit is None else r.versus_unit
        versus = f"{r.versus}: {_num(r.versus_value, unit)}" if r.versus else ""
        met = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append((r.figure, _num(r.value, r.unit), versus, ratio, r.target, met))
    widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), "  ".join("-" * w for w in widths)]
    out += [fmt.format(*row).rstrip() for row in lines]
    return "\n".join(out)
