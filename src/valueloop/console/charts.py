"""Vega-Lite specifications of the console's charts, built from stored figures.

The page embeds each as JSON data (never as script) and the vendored vega-embed draws it with
Vega's CSP-safe expression interpreter, so the strict Content-Security-Policy holds.
"""

from __future__ import annotations

from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
Spec = dict[str, Any]


def _spec(values: list[dict[str, Any]], description: str, **rest: Any) -> Spec:
    return {"$schema": SCHEMA, "description": description, "data": {"values": values},
            "width": "container", "config": {"view": {"stroke": None}, "axis": {"labelFontSize": 11}},
            **rest}


def histogram(edges: list[float], counts: list[int], column: str) -> Spec:
    """A stored histogram as bars on its own bin edges."""
    values = [{"from": edges[i], "to": edges[i + 1], "rows": c} for i, c in enumerate(counts)]
    return _spec(values, f"histogram of {column}", height=90, mark={"type": "bar", "color": "#3b6ea8"},
                 encoding={"x": {"field": "from", "type": "quantitative", "bin": {"binned": True}, "title": None},
                           "x2": {"field": "to"},
                           "y": {"field": "rows", "type": "quantitative", "title": None,
                                 "axis": {"tickCount": 3}},
                           "tooltip": [{"field": "from", "format": ".4g"}, {"field": "to", "format": ".4g"},
                                       {"field": "rows"}]})


def top_values(pairs: list[tuple[str, int]], column: str) -> Spec:
    values = [{"value": str(v)[:24], "rows": c} for v, c in pairs]
    return _spec(values, f"commonest values of {column}", height=max(60, 16 * len(values)),
                 mark={"type": "bar", "color": "#3b6ea8"},
                 encoding={"y": {"field": "value", "type": "nominal", "sort": "-x", "title": None},
                           "x": {"field": "rows", "type": "quantitative", "title": None,
                                 "axis": {"tickCount": 3}},
                           "tooltip": [{"field": "value"}, {"field": "rows"}]})


def bars_with_threshold(rows: list[dict[str, Any]], metric: str, threshold: float | None) -> Spec:
    """Each candidate's primary metric, coloured by its test verdict, against the threshold."""
    bars = {"mark": {"type": "bar"},
            "encoding": {"y": {"field": "candidate", "type": "nominal", "title": None, "sort": None},
                         "x": {"field": "value", "type": "quantitative", "title": metric},
                         "color": {"field": "verdict", "type": "nominal", "title": "model tests",
                                   "scale": {"domain": ["passed", "failed"], "range": ["#2e7d4f", "#b3412f"]}},
                         "tooltip": [{"field": "candidate"}, {"field": "value", "format": ".4f"},
                                     {"field": "verdict"}]}}
    layers: list[Spec] = [bars]
    if threshold is not None:
        layers.append({"data": {"values": [{"threshold": threshold}]}, "mark": {"type": "rule", "strokeDash": [4, 3]},
                       "encoding": {"x": {"field": "threshold", "type": "quantitative"}}})
    return _spec(rows, f"{metric} per candidate", height=max(60, 28 * len(rows)), layer=layers)


def heatmap(cells: list[dict[str, Any]]) -> Spec:
    """Drift score per feature (rows) and window (columns); a drifted cell is outlined."""
    return _spec(cells, "drift per feature and window", height={"step": 22},
                 autosize={"type": "fit-x", "contains": "padding"},
                 mark={"type": "rect"},
                 encoding={"x": {"field": "window", "type": "ordinal", "title": "window", "sort": None,
                                 "axis": {"labelAngle": 0, "labelOverlap": True}},
                           "y": {"field": "feature", "type": "nominal", "title": None},
                           "color": {"field": "score", "type": "quantitative", "title": "drift score",
                                     "scale": {"scheme": "orangered"}},
                           "stroke": {"condition": {"test": "datum.drifted", "value": "#111"}, "value": None},
                           "tooltip": [{"field": "feature"}, {"field": "window"}, {"field": "start"},
                                       {"field": "score", "format": ".3f"}, {"field": "threshold"},
                                       {"field": "drifted"}]})


def lines(points: list[dict[str, Any]], x: str, y: str, series: str, description: str,
          target: float | None = None, x_type: str = "ordinal", y_title: str | None = None,
          extra_tooltip: tuple[str, ...] = (), y_format: str = "~g") -> Spec:
    """One line per series, with an optional dashed target line; ``extra_tooltip`` names more
    fields of the points to show on hover, ``y_format`` is a d3 format of the y axis (``~g``:
    300 and 0.2, not 300.000000)."""
    line = {"mark": {"type": "line", "point": True},
            "encoding": {"x": {"field": x, "type": x_type, "sort": None, "title": x,
                               "axis": {"labelAngle": 0, "labelOverlap": True}},
                         "y": {"field": y, "type": "quantitative", "title": y_title or y,
                               "scale": {"zero": False}, "axis": {"format": y_format}},
                         "color": {"field": series, "type": "nominal", "title": None,
                                   "legend": {"orient": "bottom"}},
                         "strokeDash": {"field": series, "type": "nominal", "title": None},
                         "tooltip": [{"field": series}, {"field": x}, {"field": y, "format": ".4g"},
                                     *({"field": f} for f in extra_tooltip)]}}
    layers: list[Spec] = [line]
    if target is not None:
        layers.append({"data": {"values": [{"target": target}]},
                       "mark": {"type": "rule", "color": "#b3412f", "strokeDash": [6, 4]},
                       "encoding": {"y": {"field": "target", "type": "quantitative"}}})
    return _spec(points, description, height=180, layer=layers)
