"""Reports render in a real browser: headless Chromium (Debian's package) opens
the index and a train report and decodes every embedded image."""

import os
import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="chromium not installed (make test installs it)")

_PROBE = """<script>window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  document.body.setAttribute('data-probe', JSON.stringify({
    images: imgs.length, decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    rows: document.querySelectorAll('tr').length, title: document.title}));
});</script>"""


def _render(page, tmp_path):
    """Open a copy of ``page`` (plus a probe script) in headless Chromium; return what the probe saw."""
    assert CHROMIUM, "chromium is required in CI: run `make test`, which installs it"
    copy = page.parent / f".probe-{page.name}"
    copy.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    try:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000",
             "--dump-dom", copy.as_uri()],
            capture_output=True, text=True, timeout=90)
    finally:
        copy.unlink()
    match = re.search(r"data-probe=\"(\{.*?\})\"", out.stdout)
    assert match, f"the page did not load in Chromium: {out.stderr[-500:]}"
    import html
    import json

    return json.loads(html.unescape(match.group(1)))


def test_index_renders_in_chromium(run_home, tmp_path):
    home, _, _ = run_home
    probe = _render(home.reports_dir / "index.html", tmp_path)
    assert probe["title"] == "churn-mlops reports" and probe["rows"] >= 3


def test_train_report_renders_with_its_images(run_home, tmp_path):
    home, _, _ = run_home
    probe = _render(home.reports_dir / "v1" / "03_train.html", tmp_path)
    assert probe["images"] >= 4 and probe["decoded"] == probe["images"]
