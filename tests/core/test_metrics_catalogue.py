"""Every metric in the README's catalogue is watched by some test that makes it move.

A test watches a metric when it reads it by name (a sample or a scrape) or through its attribute on
`Metrics` (`metrics.deliveries.labels(...)`). This test and the catalogue's own listing tests
(tests/postbud/test_deploy.py) do not count.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from core.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
IGNORED = {"test_metrics_catalogue.py", "test_deploy.py"}


def catalogue() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `(postbud_[a-z0-9_]+)` \|", text, flags=re.MULTILINE)


def attributes() -> dict[str, str]:
    """Metric name -> its attribute on Metrics, for the metrics defined there (not the DB gauges)."""
    metrics = Metrics()
    out = {}
    for attr, metric in vars(metrics).items():
        if isinstance(metric, MetricWrapperBase):
            name = metric._name  # counters drop their _total here
            out[name + "_total" if metric._type == "counter" else name] = attr
    return out


def watched(name: str, attr: str | None, sources: dict[str, str]) -> list[str]:
    patterns = [re.compile(rf"\b{re.escape(name)}(_count|_sum|_bucket)?\b")]
    if attr is not None:
        patterns.append(re.compile(rf"\.{re.escape(attr)}\.(labels|_value|collect)\b"))
    return [path for path, text in sources.items() if any(p.search(text) for p in patterns)]


def test_every_catalogued_metric_is_watched_by_a_test() -> None:
    sources = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
               for p in (ROOT / "tests").rglob("test_*.py") if p.name not in IGNORED}
    attrs = attributes()
    names = catalogue()
    assert len(names) >= 30
    unwatched = [name for name in names if not watched(name, attrs.get(name), sources)]
    assert unwatched == [], f"no test makes these metrics move: {unwatched}"
