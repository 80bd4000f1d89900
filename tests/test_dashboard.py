"""The dashboard (web/, served by the emperor at / on its API address), driven in a real headless Chromium.

Selenium drives Debian's `chromium` through `chromium-driver` (both installed by tests/run). Every test runs a
real emperor on a temporary vassal directory; the main one deploys two vassals under a little bounded load and
checks what a user sees: both listed with non-zero req/s, a line the app printed in the live log, an HTML-looking
log line shown as text, a reload through the button (with the token, after the confirmation dialog) replacing
the workers, API errors shown in the page, and no horizontal overflow at phone width. Screenshots of each page
are saved under target/test-artifacts/dashboard/.

The emperor serves the files embedded at build time. To try edits to web/ without rebuilding, run the tests
with LIEGE_WEB_DIR=$PWD/web (the emperor then reads web/ from disk; the variable reaches it through the test's
environment).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from liegetest import REPO, ConnectionClosed, http_get, register_for_report, wait_for
from liegetest import Emperor

ARTIFACTS = REPO / "target" / "test-artifacts" / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
XSS = "<img src=x onerror=alert(1)>"
KNOWN_LINE = "hello from the shop, printed by the app"

APP = f"""\
import os

def application(environ, start_response):
    if environ.get("PATH_INFO") == "/print":
        print({KNOWN_LINE!r}, flush=True)
        print("app says " + {XSS!r}, flush=True)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d\\n" % os.getpid()]
"""

UI_TIMEOUT = 30.0


# ----------------------------------------------------------------------------------------------------------------
# The browser


def _browser_missing() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return ", ".join(missing) or None


@pytest.fixture
def browser(request):
    missing = _browser_missing()
    if missing:
        why = f"the dashboard tests need {missing} (tests/run installs chromium, chromium-driver and selenium)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI is set: {why}", pytrace=False)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1366,900", "--disable-extensions", "--no-first-run", "--lang=en-US"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit chromedriver path: selenium then never tries to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    register_for_report(request.node, _BrowserReport(driver))
    try:
        yield driver
    finally:
        driver.quit()


class _BrowserReport:
    """On failure, the browser's console (CSP violations, script errors) joins the test report."""

    def __init__(self, driver):
        self.driver = driver

    def describe(self) -> str:
        try:
            lines = [f"{e['level']} {e['message']}" for e in self.driver.get_log("browser")]
            url = self.driver.current_url
        except Exception as e:  # noqa: BLE001 - the browser may be gone already
            return f"--- browser: unavailable ({e!r})"
        return f"--- browser at {url}, console:\n" + "\n".join(lines[-60:])


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def wait_js(driver, script: str, what: str, timeout: float = UI_TIMEOUT, *args):
    """Waits until `script` (a function body returning a value) returns something truthy in the page.

    A renderer starved of CPU (pytest-xdist workers and Chromium on two shared cores) can leave one
    `execute_script` call over the script timeout; that is one failed look, not a verdict: the wait goes on
    until its own bound."""

    from selenium.common.exceptions import TimeoutException

    def look():
        try:
            return js(driver, script, *args)
        except TimeoutException:
            return None

    return wait_for(look, timeout, what, interval=0.1)


def screenshot(driver, name: str) -> Path:
    """A screenshot of the whole page (the window grows to the page's height for it, then shrinks back)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    height = js(driver, "return Math.ceil(document.documentElement.scrollHeight)")
    driver.set_window_size(size["width"], max(size["height"], min(int(height) + 120, 6000)))
    js(driver, "window.scrollTo(0, 0); document.activeElement && document.activeElement.blur()")
    path = ARTIFACTS / f"{name}.png"
    try:
        assert driver.save_screenshot(os.fspath(path)), f"screenshot {path} failed"
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path


def no_horizontal_overflow(driver) -> tuple[int, int]:
    return tuple(js(driver, "const d = document.documentElement; return [d.scrollWidth, d.clientWidth];"))


def open_page(driver, emperor: Emperor, hash_: str = "") -> None:
    driver.get(f"http://127.0.0.1:{emperor.api_port}/{hash_}")
    wait_js(driver, "return document.querySelector('#main').childElementCount > 0", "the dashboard to render")


# ----------------------------------------------------------------------------------------------------------------
# The emperor and the load


@pytest.fixture
def emperors(emperor_factory, tmp_path):
    """emperors(name): a started emperor under tmp_path/name, with this file's APP beside its vassal directory
    (test_emperor's factory ends every process it started)."""
    def make(name: str) -> Emperor:
        root = tmp_path / name
        root.mkdir()
        (root / "app.py").write_text(APP)
        return emperor_factory(root=root, name=name)
    return make


class Load:
    """One client thread per port, each at most `rate` requests per second, stopped at exit (and bounded anyway:
    at most 40,000 requests and 150 s per thread)."""

    def __init__(self, ports: list[int], rate: float = 120.0):
        self.ports = ports
        self.rate = rate
        self.stop = threading.Event()
        self.sent = {p: 0 for p in ports}
        self.threads = [threading.Thread(target=self._run, args=(p,), daemon=True) for p in ports]

    def _run(self, port: int) -> None:
        deadline = time.monotonic() + 150
        gap = 1.0 / self.rate
        nxt = time.monotonic()
        for _ in range(40_000):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            try:
                http_get(port, "/", timeout=5)
                self.sent[port] += 1
            except (OSError, ConnectionClosed, ValueError):
                pass  # a reload may refuse a connection for a moment; the dashboard is what is under test
            nxt += gap
            delay = nxt - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            else:
                nxt = time.monotonic()

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def vassal_ini(e: Emperor) -> str:
    return f"[uwsgi]\nwsgi-file = {e.root / 'app.py'}\nprocesses = 2\n"


def served_file_matches(emperor: Emperor, rel: str) -> bool:
    resp = http_get(emperor.api_port, f"/{rel}", timeout=10)
    return resp.status == 200 and resp.body == (REPO / "web" / rel).read_bytes()


# ----------------------------------------------------------------------------------------------------------------
# Tests


def test_dashboard_overview_vassal_page_logs_actions_and_phone_layout(browser, emperors):
    e = emperors("main")
    for rel in sorted(p.relative_to(REPO / "web").as_posix() for p in (REPO / "web").rglob("*") if p.is_file()):
        assert served_file_matches(e, rel), (
            f"the emperor serves another web/{rel} than the working tree's: rebuild the binary "
            f"(the files are embedded) or run the tests with LIEGE_WEB_DIR={REPO / 'web'}")
    (e.dir / "shop.ini").write_text(vassal_ini(e))
    (e.dir / "blog.ini").write_text(vassal_ini(e))
    _, shop_port = e.wait_serving("shop")
    _, blog_port = e.wait_serving("blog")
    e.wait_state("shop", "running", where=lambda v: len(v["workers"]) == 2)

    with Load([shop_port, blog_port]):
        # --- overview: both vassals, each with a non-zero req/s ------------------------------------------------
        open_page(browser, e)
        rps_of = """
            const out = {};
            for (const card of document.querySelectorAll('.card[data-vassal]')) {
              out[card.dataset.vassal] = card.querySelector('[data-metric="rps"]').textContent;
            }
            return out;"""

        def both_busy():
            shown = js(browser, rps_of)
            values = {}
            for name, text in shown.items():
                m = re.fullmatch(r"([\d.,]+) req/s", text)
                values[name] = float(m.group(1).replace(",", "")) if m else 0.0
            return shown if set(values) == {"blog", "shop"} and all(v > 0 for v in values.values()) else None
        try:
            shown = wait_for(both_busy, UI_TIMEOUT, "both vassals with a non-zero req/s on the overview",
                             interval=0.2)
        except TimeoutError as err:
            raise AssertionError(f"{err}; the overview shows {js(browser, rps_of)}; the API says "
                                 f"{ {n: v.get('rps') for n, v in e.vassals().items()} }") from None
        assert js(browser, "return document.querySelectorAll('.card .pill')[0].textContent") == "running"
        # Each card's 15-minute sparkline is drawn from /history (a placeholder path is "M0,0").
        wait_js(browser, "return [...document.querySelectorAll('.card .spark-line')]"
                         ".filter(p => p.getAttribute('d').length > 10).length === 2", "both sparklines drawn")
        assert browser.title.startswith("Vassals")
        screenshot(browser, "overview")

        # --- vassal page: the app's own line in the live log, and the HTML-looking line as text ---------------
        browser.find_element("css selector", '.card[data-vassal="shop"] a.vassal-link').click()
        wait_js(browser, "return location.hash === '#/vassal/shop' && document.querySelector('.logtail')",
                "the vassal page")
        log_texts = "return [...document.querySelectorAll('.log .log-text')].map(e => e.textContent)"
        # The tail goes live over Server-Sent Events (it says "polling" when it had to fall back).
        wait_js(browser, "return document.querySelector('.log-mode').textContent === 'live'", "the SSE log stream")
        assert http_get(shop_port, "/print", timeout=10).status == 200
        wait_for(lambda: KNOWN_LINE in js(browser, log_texts), UI_TIMEOUT, "the app's printed line in the log tail",
                 interval=0.2)
        wait_for(lambda: f"app says {XSS}" in js(browser, log_texts), UI_TIMEOUT,
                 "the HTML-looking line in the log tail, as text", interval=0.2)
        assert js(browser, "return document.querySelectorAll('.log img, main img').length") == 0
        from selenium.common.exceptions import NoAlertPresentException
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018 - raises when no alert is open

        # The filter box keeps only matching lines, highlighted.
        box = browser.find_element("css selector", "#log-filter")
        box.send_keys("onerror")
        wait_for(lambda: (lambda ts: ts and all("onerror" in t for t in ts))(js(browser, log_texts)), 10,
                 "the filter to keep only matching lines", interval=0.1)
        assert js(browser, "return document.querySelector('.log mark').textContent") == "onerror"
        box.clear()
        box.send_keys(" ")  # an empty filter (spaces are trimmed) shows every line again
        wait_for(lambda: any("onerror" not in t for t in js(browser, log_texts)), 10, "the unfiltered log again")

        # Workers table lists the API's worker pids; the socket and config path are shown.
        v = e.vassal("shop")
        old_pids = sorted(w["pid"] for w in v["workers"])
        wait_js(browser, "return [...document.querySelectorAll('tbody tr[data-pid]')].length === 2",
                "the worker table")
        wait_js(browser, "const p = document.querySelector('.chart.c-rps path.line');"
                         "return p && p.getAttribute('d').length > 10", "the req/s chart drawn")
        page_text = js(browser, "return document.querySelector('main').innerText")
        assert v["config"] in page_text and v["sockets"][0]["address"] in page_text
        screenshot(browser, "vassal")

        # --- actions: without a token, with a wrong one (the API's error shows), then with the right one -----
        _, api_error = e.request("POST", "/api/vassals/shop/reload")
        api_error = api_error["error"]
        _, wrong_error = e.request("POST", "/api/vassals/shop/reload", token="wrong")
        wrong_error = wrong_error["error"]
        js(browser, "sessionStorage.clear()")

        def act(action: str, token: str | None) -> None:
            btn = browser.find_element("css selector", f'button[data-action="{action}"]')
            wait_for(lambda: btn.is_enabled(), 10, f"the {action} button to be enabled")
            js(browser, "arguments[0].scrollIntoView({block: 'center'})", btn)  # not under the sticky top bar
            btn.click()
            wait_js(browser, "return document.querySelector('#confirm-dialog').open", "the confirmation dialog")
            if token is not None:
                assert js(browser, "return !document.querySelector('#confirm-token-field').hidden")
                # Keyboard: the token field has focus; typing and Enter confirm.
                active = browser.switch_to.active_element
                assert active.get_attribute("id") == "confirm-token"
                active.send_keys(token)
            browser.find_element("css selector", "#confirm-ok").click()
            wait_js(browser, "return !document.querySelector('#confirm-dialog').open", "the dialog to close")

        alert_text = "const a = document.querySelector('#action-error'); return a.hidden ? '' : a.textContent"
        act("reload", "")
        shown = wait_js(browser, alert_text, "the API's error for a reload without a token")
        assert api_error in shown and "401" in shown, shown
        browser.find_element("css selector", "#action-error button").click()  # dismiss it
        wait_js(browser, "return document.querySelector('#action-error').hidden", "the error to be dismissed")
        act("reload", "wrong")
        shown = wait_js(browser, alert_text, "the API's error for a wrong token")
        assert wrong_error in shown and "401" in shown, shown
        assert js(browser, "return sessionStorage.length") == 0, "a refused token must not be kept"
        assert e.vassal("shop")["reloads"] == 0 and sorted(w["pid"] for w in e.vassal("shop")["workers"]) == old_pids

        act("reload", e.token())
        wait_js(browser, "return [...document.querySelectorAll('.toast')].some(t => t.textContent.includes('accepted'))",
                "the accepted note")
        assert js(browser, alert_text) == "", "the earlier error is cleared by a successful call"

        def reloaded():
            v = e.vassal("shop")
            pids = sorted(w["pid"] for w in v["workers"])
            return v if v["state"] == "running" and len(pids) == 2 and not set(pids) & set(old_pids) else None
        v = wait_for(reloaded, 45, "the shop's workers to be replaced by the reload", interval=0.2)
        new_pids = {str(w["pid"]) for w in v["workers"]}
        wait_js(browser, "return [...document.querySelectorAll('tbody tr[data-pid]')].map(r => r.dataset.pid)"
                         ".sort().join() === arguments[0]", "the new worker pids in the table", UI_TIMEOUT,
                ",".join(sorted(new_pids)))
        # The kept token serves the next action without asking again (the field is hidden).
        assert js(browser, "return sessionStorage.length") == 1

        # --- phone width: nothing wider than the screen, on both pages -----------------------------------------
        browser.set_window_size(375, 812)
        wait_js(browser, "return window.innerWidth <= 400", "the phone-width window")
        for page, hash_ in (("phone-vassal", "#/vassal/shop"), ("phone-overview", "#/")):
            open_page(browser, e, hash_)
            wait_js(browser, "return document.querySelectorAll('.card, .tile').length > 0", f"{page} content")
            time.sleep(0.5)  # let a poll fill values in (only the screenshot depends on it)
            scroll_w, client_w = no_horizontal_overflow(browser)
            assert scroll_w <= client_w, f"{page}: horizontal overflow, {scroll_w}px content in {client_w}px"
            screenshot(browser, page)

    console = [l["message"] for l in browser.get_log("browser") if l["level"] == "SEVERE"]
    broken = [m for m in console if "Content Security Policy" in m or "Uncaught" in m]
    assert not broken, broken


def test_dashboard_empty_state_a_broken_vassal_and_keyboard_use(browser, emperors):
    e = emperors("empty")
    open_page(browser, e)
    text = wait_js(browser, "const el = document.querySelector('.empty'); return el && el.innerText",
                   "the empty state")
    assert "No vassals yet" in text and ".ini" in text, text
    assert "[uwsgi]" in text, text
    screenshot(browser, "empty")
    # A vassal dropped in afterwards replaces the empty state without a reload of the page.
    (e.dir / "late.ini").write_text(vassal_ini(e))
    wait_js(browser, "return document.querySelector('.card[data-vassal=\"late\"]') && !document.querySelector('.empty')",
            "the new vassal's card")
    assert os.fspath(e.dir) in text, "the empty state names the directory to drop files into"
    # A vassal whose app cannot be imported shows its state in colour and the error, as text.
    (e.dir / "broken.py").write_text('raise RuntimeError("<b>not bold</b> on purpose")\n')
    (e.dir / "broken.ini").write_text("[uwsgi]\nwsgi-file = broken.py\nprocesses = 1\n")
    error = wait_js(browser, "const c = document.querySelector('.card[data-vassal=\"broken\"] .card-error');"
                             " return c && !c.hidden && c.textContent",
                    "the broken vassal's error on its card", 60)
    assert "<b>not bold</b> on purpose" in error, error
    assert not js(browser, "return document.querySelector('.card[data-vassal=\"broken\"] .card-error b')")
    state = js(browser, "return document.querySelector('.card[data-vassal=\"broken\"]').dataset.state")
    assert state in ("error", "throttled"), state
    pill = js(browser, "const p = document.querySelector('.card[data-vassal=\"broken\"] .pill-slot > *');"
                       " return [p.textContent, getComputedStyle(p).color]")
    assert state in pill[0], pill
    running = js(browser, "const p = document.querySelector('.card[data-vassal=\"late\"] .pill-slot > *');"
                          " return getComputedStyle(p).color")
    assert pill[1] != running, "a failing vassal's state is not coloured like a running one"
    screenshot(browser, "broken")
    # Keyboard only: Tab reaches the card's link, Enter opens the vassal page; an action's dialog opens from
    # the keyboard and Escape closes it without doing anything.
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    js(browser, "document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    for _ in range(40):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if js(browser, "const a = document.activeElement; return a && a.matches('.card[data-vassal=\"late\"] a')"):
            break
    else:
        pytest.fail("Tab never reached the late vassal's link")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_js(browser, "return location.hash === '#/vassal/late'", "the vassal page, opened with Enter")
    pids_before = {w["pid"] for w in e.vassal("late")["workers"]}
    wait_js(browser, "const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Reload');"
                     " if (b && !b.disabled) { b.focus(); return document.activeElement === b; } return false",
            "the Reload button, focused")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_js(browser, "return [...document.querySelectorAll('dialog')].some(d => d.open)", "a dialog, opened with Enter")
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    wait_js(browser, "return ![...document.querySelectorAll('dialog')].some(d => d.open)", "the dialog, closed with Escape")
    assert {w["pid"] for w in e.vassal("late")["workers"]} == pids_before, "Escape must not reload"
