"""Renderings of a contributor-share report: CSV and a chart (matplotlib, Agg, imported lazily)."""

from __future__ import annotations

import csv
import io

from generator.selectors import ShareReport

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """A contributor name as a spreadsheet shows it, never as a formula: names come from files' own metadata, and
    Excel or LibreOffice would run `=HYPERLINK(...)` in a CSV (OWASP's CSV-injection rule: prefix a quote)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def report_csv(report: ShareReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["contributor", f"total_{report.label}_share", "generations", "payout"])
    for row in report.rows:
        writer.writerow(
            [spreadsheet_text(row.contributor), f"{row.total_share:.6f}", row.generations, str(row.payout)]
        )
    return buf.getvalue()


def chart_text(text: str) -> str:
    """Matplotlib reads `$...$` as mathematics, and an unbalanced `$` in a name fails the whole chart."""
    return text.replace("$", r"\$")


def report_chart(report: ShareReport, *, fmt: str = "png", top: int = 20) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = report.rows[:top][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(3, len(rows)) + 1.2))
    ax.barh([chart_text(r.contributor[:40]) for r in rows], [float(r.payout) for r in rows], color="#4a7ab5")
    ax.set_xlabel(f"payout from a pool of {report.pool} ({report.images} images)")
    ax.set_title(f"Contributor shares by {report.label} ({report.method})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    plt.close(fig)
    return buf.getvalue()
