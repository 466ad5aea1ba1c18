"""The monitoring report as one self-contained HTML page: drift per feature over the windows,
performance over time (measured, or estimated before labels), the business KPIs against their
targets, latency; each chart a small inline PNG."""

from __future__ import annotations

import base64
import io
from html import escape
from typing import TYPE_CHECKING

from valueloop.operate.kpis import KpiValueView
from valueloop.operate.monitor import MonitorReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}.bad{color:#b00020;font-weight:600}
.ok{color:#1b7a35}.note{color:#666}img{vertical-align:middle}"""


def _png(figure: Figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _figure(width: float, height: float) -> tuple[Figure, object]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _spark(report: MonitorReport, column: str) -> str:
    """The column's drift score per window against its threshold."""
    points = [(w.start, w.drift[column]) for w in report.windows if column in w.drift]
    figure, axis = _figure(2.6, 0.8)
    axis.plot([p[0] for p in points], [p[1].score for p in points], marker=".", color="#3465a4")
    axis.axhline(points[-1][1].threshold, color="#b00020", linewidth=0.8, linestyle="--")
    axis.set_xticks([])
    axis.tick_params(labelsize=6)
    return _png(figure)


def _performance_chart(report: MonitorReport) -> str:
    figure, axis = _figure(6, 2.4)
    starts = [w.start for w in report.windows]
    names = sorted({k for w in report.windows for k in w.performance if k in ("roc_auc", "accuracy", "recall", "f1", "rmse", "mae")})
    for name in names:
        axis.plot(starts, [w.performance.get(name) for w in report.windows], marker="o", label=name)
    estimated = sorted({k for w in report.windows for k in w.estimate if k in ("accuracy", "recall")})
    for name in estimated:
        axis.plot(starts, [w.estimate.get(name) if w.estimated else None for w in report.windows],
                  linestyle="--", marker="x", label=f"{name} (estimated)")
    axis.legend(fontsize=7)
    axis.tick_params(labelsize=7)
    figure.autofmt_xdate()
    return _png(figure)


def _kpi_chart(values: list[KpiValueView]) -> str:
    figure, axis = _figure(4, 1.6)
    axis.plot([v.at for v in values], [v.value for v in values], marker="o")
    if values[-1].threshold is not None:
        axis.axhline(values[-1].threshold, color="#b00020", linestyle="--", linewidth=0.8)
    axis.tick_params(labelsize=6)
    figure.autofmt_xdate()
    return _png(figure)


def _flag(bad: bool, text: str) -> str:
    return f'<span class="{"bad" if bad else "ok"}">{escape(text)}</span>'


def render(report: MonitorReport, kpi_history: list[KpiValueView]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>valueloop monitor: {escape(report.usecase)}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>Monitoring report: {escape(report.usecase)}</h1>",
             f"<p class='note'>windows of {escape(report.window)}; reference: dataset version "
             f"{report.reference_version}; computed {report.computed_at:%Y-%m-%d %H:%M:%S} UTC</p>"]
    if report.message:
        parts.append(f"<p class='bad'>{escape(report.message)}</p>")
    if report.windows:
        newest = report.windows[-1]
        parts.append(f"<h2>Data drift, newest window ({newest.start:%Y-%m-%d %H:%M} to {newest.end:%Y-%m-%d %H:%M}, "
                     f"{newest.rows} predictions)</h2><p>dataset drift: "
                     + _flag(newest.dataset_drift, f"{'yes' if newest.dataset_drift else 'no'}, "
                             f"{len(newest.drifted)} of {len(newest.drift)} columns ({newest.drift_share:.0%})")
                     + "</p><table><tr><th>feature</th><th>kind</th><th>method</th><th>score</th><th>threshold</th>"
                       "<th>drift</th><th>missing</th><th>over the windows</th></tr>")
        for column, d in newest.drift.items():
            missing = newest.missing.get(column)
            parts.append(f"<tr><td>{escape(column)}</td><td>{d.kind}</td><td>{d.method}</td><td>{d.score:.4g}</td>"
                         f"<td>{d.threshold:g}</td><td>{_flag(d.drifted, 'drift' if d.drifted else 'ok')}</td>"
                         f"<td>{_flag(bool(missing and missing.rising), f'{missing.share:.1%}' if missing else '')}</td>"
                         f"<td>{_spark(report, column)}</td></tr>")
        parts.append("</table>")
        for column, unseen in newest.unseen.items():
            parts.append(f"<p class='bad'>{escape(column)}: {unseen.rows} value(s) never seen in training: "
                         f"{escape(', '.join(unseen.values))}</p>")
        for problem in newest.problems:
            parts.append(f"<p class='bad'>{escape(problem)}</p>")
        if newest.prediction_drift:
            p = newest.prediction_drift
            parts.append(f"<p>prediction drift ({p.method}): {p.score:.4g} against {p.threshold:g}: "
                         + _flag(p.drifted, "drift" if p.drifted else "ok") + "</p>")
        parts.append("<h2>Performance over time</h2><table><tr><th>window</th><th>predictions</th><th>labeled</th>"
                     "<th>metrics</th></tr>")
        for w in report.windows:
            shown = w.estimate if w.estimated else w.performance
            label = " <span class='note'>(estimated from probabilities, no labels yet)</span>" if w.estimated else ""
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in shown.items())
            parts.append(f"<tr><td>{w.start:%Y-%m-%d %H:%M}</td><td>{w.rows}</td><td>{w.labeled}</td>"
                         f"<td>{escape(metrics)}{label}</td></tr>")
        parts.append("</table>" + _performance_chart(report))
    parts.append("<h2>Business KPIs against their targets</h2>")
    by_metric: dict[str, list[KpiValueView]] = {}
    for value in kpi_history:
        by_metric.setdefault(value.metric, []).append(value)
    if not by_metric:
        parts.append("<p class='note'>no business KPI reported yet (`valueloop kpi record`)</p>")
    for metric, values in by_metric.items():
        last = values[-1]
        parts.append(f"<p>{escape(metric)}: {last.value:g} (target {escape(last.target)}, cycle {last.cycle}) "
                     + _flag(not last.met, "met" if last.met else "missed") + f" {_kpi_chart(values)}</p>")
    health = report.health
    parts.append("<h2>Technical health</h2><p>"
                 + (f"error rate {health.error_rate:.2%} of {health.requests:g} requests" if health.error_rate is not None
                    else escape(health.problem or "no requests counted yet")) + "</p>")
    if report.windows and report.windows[-1].latency:
        latency = report.windows[-1].latency
        parts.append(f"<p>latency of the newest window: p50 {latency['p50'] * 1000:.1f} ms, "
                     f"p95 {latency['p95'] * 1000:.1f} ms, p99 {latency['p99'] * 1000:.1f} ms</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
