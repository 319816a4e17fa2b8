"""Activity analytics over the audit log: what ``groundwire analytics`` prints, as JSON or a self-contained page.

The log is read through :func:`groundwire.trust.export_audit` (decrypted with the configured keyring), so the
numbers come from the same records ``audit verify`` checks. Only ids, counts and timings are used: events hold
no document text unless ``[audit] store_prompts``/``store_drafts`` are on, and nothing here reads those fields.

Counted as requests: ``request`` (ground), ``retrieve`` and ``prompt_blocked`` events. A request is *blocked*
when the prompt shield refused it or output screening blocked the draft, and *withheld* when document
screening kept at least one retrieved source from it. Latency is the event's ``latency_ms`` (the time from
the request to its audit record). Most cited sources count the citations of drafts (and the sources returned
by ``retrieve``) per ``connector:document``.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write
from .errors import MissingExtra

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = ["Summary", "render_html", "summarize", "summarize_events", "write_html"]

REQUEST_KINDS = ("request", "retrieve", "prompt_blocked")
_TOP = 10


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method)."""
    import numpy as np

    return round(float(np.percentile(np.asarray(values, dtype=float), q)), 2)


@dataclass(slots=True)
class Summary:
    """The figures of one analytics run (see the module docstring for what each counts)."""

    since: str
    tenant: str
    requests: int = 0
    blocked: int = 0
    withheld: int = 0
    denied: int = 0
    per_day: dict[str, dict[str, int]] = field(default_factory=dict)  # day -> feature -> requests
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # feature -> p50/p90/p99/n
    top_sources: list[tuple[str, int]] = field(default_factory=list)
    reviews: dict[str, int] = field(default_factory=dict)  # decision -> count
    latencies: dict[str, list[float]] = field(default_factory=dict, repr=False)

    @property
    def blocked_rate(self) -> float:
        return round(self.blocked / self.requests, 4) if self.requests else 0.0

    @property
    def withheld_rate(self) -> float:
        return round(self.withheld / self.requests, 4) if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since, "tenant": self.tenant, "requests": self.requests, "blocked": self.blocked,
                "blocked_rate": self.blocked_rate, "withheld": self.withheld, "withheld_rate": self.withheld_rate,
                "denied": self.denied, "per_day": self.per_day, "latency_ms": self.latency_ms,
                "top_sources": [{"source": s, "citations": n} for s, n in self.top_sources],
                "reviews": self.reviews}


def summarize_events(events: Iterable[dict[str, Any]], since: str = "", tenant: str = "*") -> Summary:
    """The :class:`Summary` of audit ``events`` (decrypted event dicts)."""
    s = Summary(since, tenant)
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    lat: dict[str, list[float]] = defaultdict(list)
    cited: Counter[str] = Counter()
    reviews: Counter[str] = Counter()
    for ev in events:
        kind, data = ev.get("kind"), ev.get("data") or {}
        if kind in ("feature_denied", "access_denied"):
            s.denied += 1
        elif kind == "review":
            reviews[str(data.get("decision", "?"))] += 1
        if kind not in REQUEST_KINDS:
            continue
        feature = str(data.get("feature", "?"))
        s.requests += 1
        per_day[str(ev.get("at", ""))[:10]][feature] += 1
        if kind == "prompt_blocked" or data.get("status") == "blocked":
            s.blocked += 1
        if int(data.get("withheld_sources") or 0) > 0:
            s.withheld += 1
        if isinstance(data.get("latency_ms"), int | float):
            lat[feature].append(float(data["latency_ms"]))
        names = {src.get("chunk"): f"{src.get('connector')}:{src.get('doc')}" for src in data.get("sources") or ()}
        chunks = data.get("cited") if kind == "request" else [src.get("chunk") for src in data.get("sources") or ()]
        for cid in dict.fromkeys(chunks or ()):  # a document cited twice in one draft counts once per chunk
            cited[names.get(cid, str(cid))] += 1
    s.per_day = {d: dict(sorted(c.items())) for d, c in sorted(per_day.items())}
    s.latencies = dict(lat)
    s.latency_ms = {f: {"n": len(v), "p50": _percentile(v, 50), "p90": _percentile(v, 90), "p99": _percentile(v, 99)}
                    for f, v in sorted(lat.items())}
    s.top_sources = sorted(cited.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP]
    s.reviews = dict(sorted(reviews.items()))
    return s


def summarize(g: Grounder, since: datetime | None = None, tenant: str | None = None) -> Summary:
    """The :class:`Summary` of the configured audit logs (all tenants, or ``tenant``) since ``since``."""
    from .trust import export_audit

    return summarize_events(export_audit(g, since, tenant), since.isoformat() if since else "", tenant or "*")


# --- the page -----------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingExtra("analytics --html (matplotlib)", "analytics") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _charts(s: Summary) -> list[tuple[str, str]]:
    plt = _pyplot()
    out: list[tuple[str, str]] = []
    if s.per_day:
        days = list(s.per_day)
        features = sorted({f for c in s.per_day.values() for f in c})
        fig, ax = plt.subplots(figsize=(8, 3.5))
        bottom = [0] * len(days)
        for f in features:
            vals = [s.per_day[d].get(f, 0) for d in days]
            ax.bar(days, vals, bottom=bottom, label=f)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_ylabel("requests")
        ax.legend()
        ax.tick_params(axis="x", labelrotation=45)
        out.append(("Requests per day and feature", _png(fig)))
        plt.close(fig)
    if s.latencies:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for f, v in sorted(s.latencies.items()):
            ax.hist(v, bins=min(30, max(5, len(v))), alpha=0.6, label=f)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("requests")
        ax.legend()
        out.append(("Latency", _png(fig)))
        plt.close(fig)
    if s.top_sources:
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(s.top_sources) + 1))
        names = [n for n, _ in reversed(s.top_sources)]
        ax.barh(names, [c for _, c in reversed(s.top_sources)])
        ax.set_xlabel("citations")
        out.append(("Most cited sources", _png(fig)))
        plt.close(fig)
    return out


def render_html(s: Summary) -> str:
    """A self-contained page (inline CSS, plots as PNG data URIs, no external resources)."""
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in (
        ("tenant", s.tenant), ("since", s.since or "the beginning"), ("requests", s.requests),
        ("blocked", f"{s.blocked} ({s.blocked_rate:.1%})"), ("withheld", f"{s.withheld} ({s.withheld_rate:.1%})"),
        ("denied (feature or tenant)", s.denied),
        ("review decisions", ", ".join(f"{k} {v}" for k, v in s.reviews.items()) or "none")))
    lat = "".join(f"<tr><td>{e(f)}</td><td>{v['n']:.0f}</td><td>{v['p50']}</td><td>{v['p90']}</td><td>{v['p99']}</td>"
                  "</tr>" for f, v in s.latency_ms.items())
    top = "".join(f"<tr><td>{e(n)}</td><td>{c}</td></tr>" for n, c in s.top_sources)
    charts = "".join(f"<h2>{e(t)}</h2><img alt=\"{e(t)}\" src=\"{uri}\">" for t, uri in _charts(s))
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Groundwire activity</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}img{max-width:100%}</style></head><body>"
        f"<h1>Groundwire activity</h1><table>{rows}</table>"
        "<h2>Latency percentiles (ms)</h2><table><tr><th>feature</th><th>n</th><th>p50</th><th>p90</th>"
        f"<th>p99</th></tr>{lat}</table>"
        f"<h2>Most cited sources</h2><table><tr><th>source</th><th>citations</th></tr>{top}</table>"
        f"{charts}</body></html>\n"
    )


def write_html(s: Summary, dest: Path) -> None:
    """Write :func:`render_html` to ``dest`` atomically (mode 0600: it names documents and activity)."""
    atomic_write(dest, render_html(s), fsync=False)  # a report, rebuilt on demand: atomic, not durable
