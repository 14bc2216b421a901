"""The docs' picture of a chaos report: the demo report rendered, opened in headless Chromium, screenshot.

Also prints what producing it cost (render time, file size, browser time to a drawn page), so a heavier
report shows up here first.

    python -m benchmarks.screenshot_report [--out docs/images/chaos-report.png] [--html report.html]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from harness.report import HeadlessChromium, demo_report, find_chromium, write_report

PLOTS_DRAWN = "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4"
DEFAULT_OUT = Path("docs/images/chaos-report.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the PNG to write")
    parser.add_argument("--html", type=Path, default=None, help="also keep the HTML report here")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args(argv)
    browser = find_chromium()
    if browser is None:
        print("Chromium not found: apt-get install chromium (or set HARNESS_CHROMIUM)", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory() as scratch:
        page = args.html or Path(scratch) / "report.html"
        started = time.perf_counter()
        write_report(demo_report(), page)
        rendered = time.perf_counter() - started
        size = page.stat().st_size
        started = time.perf_counter()
        with HeadlessChromium(browser, width=args.width) as chromium:
            log = chromium.open(page.resolve().as_uri())
            drawn = chromium.wait_for(PLOTS_DRAWN, timeout=20.0)
            ready = time.perf_counter() - started
            chromium.screenshot(args.out)
    print(f"render: {rendered * 1000:.0f} ms, {size / 1e6:.2f} MB (plotly inlined)")
    print(f"browser: page drawn in {ready:.2f} s (plots drawn: {drawn}), problems: {len(log.problems)}")
    for problem in log.problems:
        print(f"  {problem}")
    print(f"screenshot: {args.out}")
    return 0 if drawn and not log.problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
