"""The night report in a real browser (Debian's headless Chromium, 1280 px wide): every image loads,
nothing scrolls sideways, and the page names what it must for the demo night -- SN 2023tyk's save and SEDM
request, the CV as not selected and why. Skipped, saying so, where Chromium is not installed (.ci/run
installs it)."""

from __future__ import annotations

import shutil

import pytest
from conftest import CV, SN

from bot.cli import main

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not "
                                "installed (apt-get install chromium chromium-driver; .ci/run does)")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_the_night_report_reads_in_a_browser(browser, demo_journal, tmp_path):
    out = tmp_path / "night"
    assert main(["report", "--journal", str(demo_journal), "--night", "2023-10-04", "--out", str(out)]) == 0
    browser.get((out / "index.html").as_uri())
    from selenium.webdriver.support.ui import WebDriverWait

    script = "return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
    try:  # a loaded page may still be decoding its images on a busy machine: wait for them, then judge
        WebDriverWait(browser, 20, poll_frequency=0.2).until(lambda d: all(done for _, done, _ in d.execute_script(script)))
    except Exception:
        pass
    images = browser.execute_script(script)
    assert len(images) == 4 and all(done and width > 0 for _, done, width in images), images
    assert any(src.startswith('cutouts_') for src, _, _ in images) and any(src.startswith('lightcurve_') for src, _, _ in images)
    scroll, width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= width, f"the page scrolls sideways: {scroll} px in a {width} px window"
    css = browser.execute_script("return getComputedStyle(document.querySelector('main')).maxWidth")
    assert css == "1180px"  # the stylesheet beside the page was applied (offline, no CDN)
    text = browser.find_element("tag name", "body").text
    assert f"{SN}" in text and "save (bts_p1): saved" in text and "followup (bts_p2): posted, request" in text
    not_selected = text.split("Not selected")[1].split("Errors and pending")[0]
    assert CV in not_selected and "no counting alert (max score 0.001)" in not_selected
    assert "1\nsaved" in text and "1\nSEDM triggered" in text
    browser.save_screenshot(str(tmp_path / "night.png"))
    assert (tmp_path / "night.png").stat().st_size > 10_000


def test_the_backtest_report_reads_in_a_browser(browser, demo_journal, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text(f"objectId,label,saved_at\n{SN},1,2023-10-05T12:00:00Z\n{CV},0,\n")
    out = tmp_path / "bt"
    assert main(["backtest", "--journal", str(demo_journal), "--labels", str(labels), "--sweep",
                 "min_score=0.5:0.9:0.2", "--baseline", "--report", str(out)]) == 0
    browser.get((out / "index.html").as_uri())
    from selenium.webdriver.support.ui import WebDriverWait

    script = "return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
    try:
        WebDriverWait(browser, 20, poll_frequency=0.2).until(lambda d: all(done for _, done, _ in d.execute_script(script)))
    except Exception:
        pass
    images = browser.execute_script(script)
    assert images and all(done and width > 0 for _, done, width in images), images
    scroll, width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= width, f"the page scrolls sideways: {scroll} px in a {width} px window"
    text = browser.find_element("tag name", "body").text
    assert "selected" in text and "excluded" in text and "min_score=0.7" in text and "None" not in text.split("Policies")[1].split("Every column")[0]
