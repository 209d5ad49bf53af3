"""varcas.report: a self-contained HTML report (plotly, works offline) and REPORT.md of a run,
a sweep or a pipeline directory.

    from varcas.report import write_report
    html_path, md_path = write_report("sweeps/t4")

load.py gathers the data (what the directory is, digests, comparison, static roofline);
tables.py and findings.py turn it into cells and sentences; document.py orders them;
plots.py draws the figures; html.py and markdown.py render; write.py writes the two files.
"""
from .load import Report, load
from .write import write_report

__all__ = ["Report", "load", "write_report"]
