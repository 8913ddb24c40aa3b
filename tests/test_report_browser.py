"""The HTML report in a real headless Chromium (Debian's ``chromium`` package, driven by Playwright).

Never downloads a browser: without /usr/bin/chromium (or $METAGAME_CHROMIUM) these tests skip with the reason.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from metagame.results.result import MetaAttribution
from metagame.viz import write_outputs

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
EVIL = "<script>window.__pwned = 1</script>"
EVIL_LABEL = '<img src=x onerror="window.__pwned = 2">'


def _chromium_path() -> str | None:
    forced = os.environ.get("METAGAME_CHROMIUM")
    if forced:  # an explicit choice is the only candidate
        return forced if Path(forced).exists() else None
    for cand in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and Path(cand).exists():
            return cand
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.skip(f"browser tests need the 'playwright' Python package ({e}); pip install playwright")
    path = _chromium_path()
    if path is None:
        pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium) "
                    f"or METAGAME_CHROMIUM=/path/to/chromium; none found (METAGAME_CHROMIUM="
                    f"{os.environ.get('METAGAME_CHROMIUM')!r})")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
    except Exception as e:  # the browser exists but cannot start here
        pw.stop()
        pytest.skip(f"could not launch chromium at {path}: {str(e).splitlines()[0]}")
    yield b
    b.close()
    pw.stop()


def _result(kind: str) -> MetaAttribution:
    rng = np.random.default_rng(3)
    extras: dict = {}
    if kind == "text":
        players = ["The", "cat", EVIL_LABEL, "on", "the", "mat"]
        kinds = ["word"] * len(players)
        context = {"prompt": f"The cat {EVIL} on the mat", "answer": "</script><script>window.__pwned=3</script>",
                   "model": EVIL}
    else:
        rows, cols = 4, 4
        players = ["a", "dog"] + [f"patch ({r}, {c})" for r in range(rows) for c in range(cols)]
        kinds = ["word"] * 2 + ["patch"] * (rows * cols)
        yy, xx = np.mgrid[0:64, 0:64]
        extras["image"] = np.stack([xx / 63, yy / 63, 0.6 * np.ones_like(xx)], axis=-1)
        extras["patch_maps"] = rng.normal(size=(2, rows, cols))
        context = {"text": "a dog", "grid": [rows, cols]}
    d = len(players)
    m = rng.normal(size=(d, d))
    return MetaAttribution(matrix=m, first_order=m.sum(1), players=players, method="integrated_gradients",
                           exact=False, stderr=np.abs(rng.normal(scale=0.1, size=(d, d))), n_evaluations=99,
                           player_kinds=kinds, context=context, extras=extras,
                           metadata={"parameters": {"budget": 99, "seed": 1}, "model": {"name": EVIL}})


def _open(browser, result: MetaAttribution, out: Path):
    paths = write_outputs(result, out)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url) if not req.url.startswith(("data:", "file:")) else None)
    page.goto(paths["report"].resolve().as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests, paths


def _state(page) -> list[tuple[str, str, str]]:
    return page.eval_on_selector_all(
        ".player", "els => els.map(e => [e.getAttribute('data-i'), e.className, e.style.backgroundColor])")


def test_text_report_loads_hovers_and_never_runs_injected_script(browser, tmp_path):
    page, errors, requests, _ = _open(browser, _result("text"), tmp_path / "text")
    try:
        assert errors == []
        assert requests == []
        assert page.evaluate("window.__pwned") is None
        body = page.inner_text("body")
        assert EVIL in body  # the prompt shows as text
        assert page.locator('.player[data-i="2"]').inner_text() == EVIL_LABEL
        before = _state(page)
        page.hover('.player[data-i="1"]')
        after = _state(page)
        assert after != before
        sel = [i for i, cls, _ in after if "sel" in cls.split()]
        assert sel == ["1"]
        assert any("hl" in cls.split() for _, cls, _ in after)
        info = page.inner_text("#mg-info")
        assert "cat" in info and "moved most by" in info
        # the column view colours differently from the row view
        page.click('.player[data-i="1"]')
        row_view = _state(page)
        page.check('input[name="mg-dir"][value="col"]')
        page.mouse.move(5, 5)
        assert _state(page) != row_view
        # sortable table: ascending by value after one click
        page.click("#mg-table thead th:nth-child(3)")
        vals = page.eval_on_selector_all("#mg-table tbody td:nth-child(3)", "t => t.map(c => parseFloat(c.dataset.v))")
        assert vals == sorted(vals) and len(vals) == 36
        assert page.evaluate("window.__pwned") is None
        assert errors == []
    finally:
        page.close()


def test_patch_report_screenshot_is_not_blank(browser, tmp_path):
    page, errors, requests, paths = _open(browser, _result("patch"), tmp_path / "patch")
    try:
        assert errors == [] and requests == []
        assert page.locator(".cell").count() == 16
        assert page.locator("img.patch-img").count() == 1
        n_figs = page.locator(".fig img").count()
        assert n_figs == len([k for k in paths if k not in ("result", "report")])
        widths = page.eval_on_selector_all(".fig img", "imgs => imgs.map(i => i.naturalWidth)")
        assert all(w > 100 for w in widths)  # embedded PNGs decode
        before = _state(page)
        page.hover('.cell[data-i="7"]')
        assert _state(page) != before
        shot = page.screenshot(full_page=False)
        out = os.environ.get("METAGAME_SCREENSHOT")
        if out:
            Path(out).write_bytes(shot)
        from PIL import Image

        pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float64)
        assert pixels.std() > 10.0
        assert len(np.unique(pixels.astype(np.uint8))) > 50
    finally:
        page.close()
