"""Evaluation reports with charts: one self-contained HTML file (``behaviorlm evaluate
--report``)."""

from behaviorlm.report.page import report_html, training_log, write_report

__all__ = ["report_html", "training_log", "write_report"]
