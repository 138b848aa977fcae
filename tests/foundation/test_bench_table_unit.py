"""`make bench` turns each bench's figures into rows of its one table (no services: figures shaped like a run's)."""

from __future__ import annotations

from dataclasses import asdict

from bench import run

SOAK = {"minutes": 60, "files_per_closed_day_uncompacted_max": 8526, "files_per_closed_day_live_max": 105,
        "largest_closed_file_mb": 1.07, "files_per_closed_day_after_max": 3, "closed_days": 5,
        "query_s_uncompacted": 31.2, "query_s_ideal": 0.025, "query_ratio_uncompacted": 0.001, "query_s_after": 0.05,
        "query_ratio_after": 0.5, "query_s_whole_feed_after": 6.2, "query_s_whole_feed_ideal": 0.03,
        "query_ratio_whole_feed": 0.005,
        "rss_mb": {"minute 2": {"lake consumer": 170.0}, "end": {"lake consumer": 176.0}},
        "rss_growth": {"lake consumer": 0.035}, "lake_lag_max": 500, "raw_topic_rate": 40.0, "lag_seconds": 12.5,
        "status_mismatches": ["transaction_stream lake"], "status_ok": False, "records_lost": 0,
        "records_duplicated": 2}


def test_the_soak_figures_become_one_row_each_with_each_goal_judged() -> None:
    rows = {row.figure.split(" (")[0]: row for row in run._soak_rows(SOAK)}
    assert {figure: row.met for figure, row in rows.items() if row.met is not None} == {
        "files per closed": False,  # 3 > 2
        "ms, week-wide DuckDB aggregate after compaction": False,  # 0.5 < 0.8
        "peak RSS MB, lake consumer, end": True,
        "lake lag at the end, records": True,
        "status reconciliation mismatches": False,
        "records lost": True,
        "records duplicated": False,
    }
    table = run.render_table({"rows": [asdict(row) for row in rows.values()], "date": "2026-12-02", "quick": False,
                              "machine": {"nproc": 2, "cpu": "cpu", "memory_gb": 23.5, "mariadb": "10.11",
                                          "kafka": "4.1.1", "kcat": "1.7.1"}})
    rss = next(line for line in table.splitlines() if "peak RSS MB, lake consumer" in line).split()
    assert rss[-8:] == ["176.0", "170.0", "1.035", "growth", "<=", "10", "%", "yes"]
    assert [line.split()[-1] for line in table.splitlines() if line.startswith("soak")].count("NO") == 4
