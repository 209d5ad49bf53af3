"""`varcas report DIR`: the HTML report and REPORT.md of a run, sweep or pipeline directory.

    varcas report sweeps/t4 [--out-html F] [--out-md F] [--baseline CONFIG]

Prints the two paths it wrote. A directory that is none of the three, a corrupt file in it or
an output that cannot be written is one line on stderr and exit status 2.
"""
from __future__ import annotations

from ..clikit import OneLineParser
from .write import write_report


def build_parser(prog: str) -> OneLineParser:
    p = OneLineParser(prog=prog, description="Self-contained HTML report (interactive plots, works offline) and "
                      "REPORT.md of a run directory, a sweep directory (varcas optimize) or a pipeline directory.")
    p.add_argument("dir", help="a run, sweep or pipeline directory")
    p.add_argument("--out-html", help="HTML file to write (default DIR/report.html)")
    p.add_argument("--out-md", help="Markdown file to write (default DIR/REPORT.md)")
    p.add_argument("--baseline", help="sweep configuration the changes are against (default: the first)")
    return p


def run(args) -> int:
    html_path, md_path = write_report(args.dir, out_html=args.out_html, out_md=args.out_md, baseline=args.baseline)
    print(html_path)
    print(md_path)
    return 0
