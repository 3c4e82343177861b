"""The server-drawn SVG charts: escaped labels, scalable viewBox, hidden counts without a bar."""

from __future__ import annotations

from datetime import date

from app.web import charts


def test_labels_and_titles_are_escaped():
    svg = str(charts.bars([("<script>x</script>", 3)], "a & <b>", "c"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; &lt;b&gt;" in svg


def test_bars_scale_to_the_width_and_hidden_counts_get_no_bar():
    svg = str(charts.bars([("A", 10), ("B", "<5"), ("C", 5)], "t", "c"))
    assert 'viewBox="0 0 360 ' in svg and 'role="img"' in svg
    assert svg.count("<rect") == 2 and "&lt;5" in svg


def test_daily_columns_one_per_day():
    series = [(date(2026, 11, d), d % 3) for d in range(1, 31)]
    svg = str(charts.daily_columns(series, "t", "d"))
    assert svg.count("<rect") == 30 and "11-01" in svg and "11-30" in svg
