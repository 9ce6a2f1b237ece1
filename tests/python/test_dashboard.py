"""The packaged Grafana dashboard parses, and every expression names only metrics a live daemon exports."""
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "packaging", "grafana", "heatgate.json")

# PromQL's own words that may appear outside label matchers, strings and `by (...)` lists.
PROMQL = {
    "sum", "avg", "max", "min", "count", "rate", "increase", "irate", "avg_over_time", "max_over_time",
    "histogram_quantile", "label_values", "by", "without", "and", "or", "unless", "on", "ignoring",
    "group_left", "group_right", "bool", "offset",
}
SUFFIXES = ("_bucket", "_sum", "_count")


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def expressions(dash):
    for p in panels(dash["panels"]):
        for t in p.get("targets", []):
            yield p["title"], t["expr"]
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            yield "variable " + v["name"], v["definition"]


def metric_names(expr):
    """The identifiers of an expression that are neither PromQL words nor label names."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)           # strings
    e = re.sub(r"\{[^}]*\}", "", e)                          # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                         # ranges ([5m], [$__rate_interval])
    e = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", r"\1", e)  # grouping labels
    e = re.sub(r"\$\w+", "", e)                              # dashboard variables
    e = re.sub(r"label_values\(([^,]*),[^)]*\)", r"label_values(\1)", e)  # its label argument
    words = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e)
    return {w for w in words if w not in PROMQL and not re.fullmatch(r"\d+(e\d+)?", w)}


def families(metrics_text):
    return set(re.findall(r"^# TYPE (\S+) ", metrics_text, re.M))


def test_the_dashboard_parses_and_has_the_panels_the_issue_lists():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    assert dash["uid"] == "heatgate" and dash["schemaVersion"] >= 36
    titles = " | ".join(p["title"] for p in panels(dash["panels"])).lower()
    for words in ("heat", "bucket share", "downgrades by from", "fail-closed", "rejected", "kill switch", "mode",
                  "inputs age", "latency quantiles", "store writes", "sweeps", "publish drops", "subscribers"):
        assert words in titles, words
    ids = [p["id"] for p in panels(dash["panels"])]
    assert len(ids) == len(set(ids))
    for _, expr in expressions(dash):
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr


def test_the_name_extraction_finds_what_it_should():
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(x_bucket{job="a",le="1"}[$__rate_interval])))') \
        == {"x_bucket"}
    assert metric_names('label_values(p26_build_info{job="j"}, instance)') == {"p26_build_info"}
    assert metric_names("sum by (from_action) (rate(a_total[5m])) / b") == {"a_total", "b"}


def test_every_expression_names_only_metrics_a_live_daemon_exports(daemon):
    daemon.start()
    exported = families(daemon.metrics())
    assert "p26_heat_value" in exported and "process_open_fds" in exported
    with open(DASHBOARD) as f:
        dash = json.load(f)
    unknown, used = [], set()
    for where, expr in expressions(dash):
        for name in metric_names(expr):
            base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s) and name[: -len(s)] in exported), name)
            used.add(base)
            if base not in exported:
                unknown.append(f"{where}: {name}")
    assert not unknown, unknown
    assert len(used) >= 20, sorted(used)
