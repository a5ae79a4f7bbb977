"""Playwright: the dashboard draws its charts, and each CSV download holds the chart's numbers."""

from __future__ import annotations

import csv
import io

import pytest

from tests.department.conftest import DAY

CHART_DATA = """(name) => {
  const canvas = document.querySelector(`[data-figure="${name}"] canvas`);
  const chart = Chart.getChart(canvas);
  return {
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
    points: chart.getDatasetMeta(0).data.length,
  };
}"""


def _csv_rows(page, name):
    with page.expect_download() as info:
        page.click(f'[data-testid="csv-{name}"]')
    with open(info.value.path(), encoding="utf-8-sig") as fh:
        text = fh.read()
    return list(csv.reader(io.StringIO(text)))


def _num(v: str):
    return None if v == "" else float(v)


@pytest.mark.browser
def test_dashboard_charts_match_their_csv(page_for, history):
    page = page_for("dept_head")
    page.goto(f"{page.base_url}/department/?from={DAY}&to={DAY}")
    cards = page.locator("[data-figure]")
    assert cards.count() >= 4
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-figure] canvas')].every(c => c.dataset.ready === '1')"
    )

    chart = page.evaluate(CHART_DATA, "tat_steps")
    assert chart["points"] == len(chart["labels"]) > 0
    rows = _csv_rows(page, "tat_steps")
    header, body = rows[0], rows[1:]
    # The longest step (order → final) runs for hours: the figure is in hours.
    assert header == ["Step", "Procedures", "Median (h)", "90th percentile (h)"]
    assert [r[0] for r in body] == chart["labels"]
    assert [d["label"] for d in chart["datasets"]] == ["Median (h)", "90th percentile (h)"]
    assert [_num(r[2]) for r in body] == chart["datasets"][0]["data"]
    assert [_num(r[3]) for r in body] == chart["datasets"][1]["data"]
    # And the numbers are the hand-computed ones: completed → final median 130 min, p90 154 min.
    i = chart["labels"].index("completed → final")
    assert (chart["datasets"][0]["data"][i], chart["datasets"][1]["data"][i]) == (2.17, 2.57)

    # The stacked volume chart: one dataset per modality, one label per day.
    vol = page.evaluate(CHART_DATA, "volume_modality_day")
    rows = _csv_rows(page, "volume_modality_day")
    assert rows[0][1:-1] == [d["label"] for d in vol["datasets"]] == ["CT", "MR"]
    assert [r[0] for r in rows[1:]] == vol["labels"] == [DAY.isoformat()]
    for j, ds in enumerate(vol["datasets"], start=1):
        assert [_num(r[j]) for r in rows[1:]] == ds["data"]
    assert vol["datasets"][0]["data"] == [2]  # P1, P2 completed on CT; P3 cancelled


@pytest.mark.browser
def test_quality_page_charts_render(page_for, history):
    page = page_for("dept_head")
    page.goto(f"{page.base_url}/department/quality/?from={DAY}&to={DAY}")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-figure] canvas')].every(c => c.dataset.ready === '1')"
    )
    err = page.evaluate(CHART_DATA, "error_rates")
    assert err["labels"] == ["rad_a", "rad_b"]
    # Addendum rate rad_a 1 of 2 signed = 50 %; return rate rad_b 1 of 1 = 100 %.
    assert err["datasets"][0]["data"] == [50, 0]
    assert err["datasets"][1]["data"] == [0, 100]
