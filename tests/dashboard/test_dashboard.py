"""The Evidence dashboard (dashboard/), rendered page by page in headless Chromium, shows the
published snapshot's figures.

Needs the built site (``make dashboard-build``: npm, from the last snapshot) and Debian's
``chromium``; ``make test-dashboard`` does both and runs this file. Without them the tests
skip and say why (``make test`` does not build the dashboard yet: README, "Dashboard").
"""

from __future__ import annotations

import functools
import html
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "dashboard" / "build"
SNAPSHOT = REPO / "data" / "published" / "marts.duckdb"
CHROMIUM = shutil.which("chromium")
PAGES = {
    "": "LTV and acquisition",
    "retention/": "Churn, retention and RFM",
    "clv/": "Predicted CLV",
}

pytestmark = [
    pytest.mark.skipif(
        not (BUILD / "index.html").exists() or not SNAPSHOT.exists(),
        reason="no built dashboard or snapshot: make test-dashboard (make run, then npm)",
    ),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def site():
    """The built site served on 127.0.0.1, as ``make dashboard`` serves it."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # one line per file otherwise
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # Chromium closing early
            pass

    handler = functools.partial(Quiet, directory=str(BUILD))
    server = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@functools.cache
def _dom(url: str) -> str:
    """The page's DOM once its scripts have run (charts drawn, tables filled)."""
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return done.stdout


def _text(dom: str) -> str:
    """What a reader sees: the DOM without scripts, styles and tags."""
    shown = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", shown)))


def _snapshot(sql: str):
    with duckdb.connect(str(SNAPSHOT), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_its_title_charts_and_no_error(site, page):
    dom = _dom(site + page)
    text = _text(dom)
    assert PAGES[page] in text
    # ECharts draws each chart into a div it marks with _echarts_instance_
    assert dom.count("_echarts_instance_") >= 2, page
    # a failed query shows its error in place of the component
    assert "Error" not in text, page


def test_ltv_page_shows_the_marts_ltv_and_ltv_to_cac(site):
    text = _text(_dom(site))
    ((margin_ltv, historical_ltv),) = _snapshot(
        "select margin_ltv, historical_ltv from ltv_summary where dimension = 'overall'"
    )
    assert f"${margin_ltv:,.2f}" in text
    if historical_ltv is not None:
        assert f"${historical_ltv:,.2f}" in text
    channels = _snapshot(
        "select acquisition_channel, ltv_to_cac, cac from ltv_cac_by_channel "
        "where ltv_to_cac is not null order by acquisition_channel"
    )
    assert channels
    for channel, ratio, cac in channels:
        assert channel in text
        assert f"{ratio:,.2f}" in text and f"${cac:,.2f}" in text, channel
    predicted = _snapshot(
        "select acquisition_channel, predicted_clv_per_customer, predicted_value_to_cac "
        "from predicted_value_by_channel where predicted_value_to_cac is not null"
    )
    assert predicted
    for channel, per_customer, ratio in predicted:
        assert f"${per_customer:,.2f}" in text and f"{ratio:,.2f}" in text, channel


def test_retention_page_shows_the_marts_churn_and_segments(site):
    text = _text(_dom(site + "retention/"))
    ((churn, retention),) = _snapshot(
        "select churn_rate, retention_rate from churn_monthly where is_complete_month "
        "order by month_start desc limit 1"
    )
    assert f"{churn:.2%}" in text and f"{retention:.2%}" in text
    for segment, share in _snapshot("select segment, share_of_customers from segment_summary"):
        assert segment in text and f"{share:.1%}" in text, segment


def test_clv_page_shows_the_predicted_total_and_the_backtest(site):
    text = _text(_dom(site + "clv/"))
    ((total,),) = _snapshot("select sum(predicted_clv) from customer_predictions")
    assert f"${total:,.2f}" in text
    for model, actual, predicted in _snapshot(
        "select model, actual_total, predicted_total from clv_backtest"
    ):
        assert model in text and f"${actual:,.2f}" in text and f"${predicted:,.2f}" in text
