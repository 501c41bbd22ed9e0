"""The real app in headless Chromium: `papersift ui` started on a free 127.0.0.1 port.

Needs Debian's chromium (`make test` installs it) and the playwright package (dev extra);
Playwright drives /usr/bin/chromium, it never downloads a browser. Screenshots are saved in
tests/artifacts/.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from indexer.build import build_index
from indexer.records import Paper
from search.lists import ReadingLists
from tests.conftest import BUNDLED, ROOT, write_jsonl

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
QUESTION_LABEL = "Ask a question, type keywords, or paste an arXiv id, URL or abstract"
HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
           "[x](javascript:alert(1))", "costs $5 and $6"]
# URLs, host names and e-mail addresses that GFM would autolink, Markdown links and HTML.
LINKY = [
    {"id": "2401.00011", "title": "Linked title https://evil.example/t and www.evil.example",
     "abstract": "alert dialog test http://evil.example/a www.evil.example/b someone@evil.example "
                 "[click](https://evil.example/c) <a href='https://evil.example/d'>here</a> "
                 "<b>bold</b> mailto:x@evil.example",
     "authors": ["Mallory mallory@evil.example", "Eve www.evil.example"],
     "categories": ["cs.CR"], "url": "https://evil.example/paper"},
    {"id": "linky-2", "title": "Local paper mailto:x@evil.example HTTP://EVIL.EXAMPLE",
     "abstract": "alert dialog test https://evil.example", "url": "https://evil.example/"},
]
LIST_NAME = "**Thesis** [x](https://evil.example) <b>b</b> me@evil.example"
SAFE_HOSTS = {"arxiv.org", "export.arxiv.org", "doi.org"}

try:
    from playwright import sync_api as playwright
except ImportError:  # the dev extra is missing: see _browser_available
    playwright = None

pytestmark = [pytest.mark.browser, pytest.mark.model]


def missing_browser() -> str:
    """Why the browser tests cannot run here ('' when they can)."""
    if not CHROMIUM.exists():
        return f"Debian chromium is not installed at {CHROMIUM}"
    if playwright is None:
        return "the playwright package (dev extra) is not installed"
    return ""


@pytest.fixture(scope="session", autouse=True)
def _browser_available():
    """Skipped on a laptop without Chromium; under CI=true the same gap fails the run, so CI
    can never go green without having driven a browser."""
    if why := missing_browser():
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI=true but the browser tests cannot run: {why}", pytrace=False)
        pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVED: dict = {}  # the index the module's app serves


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_encoder):
    tmp = tmp_path_factory.mktemp("browser")
    lines = BUNDLED.read_text(encoding="utf-8").splitlines()[:120]
    hostile = [{"id": f"2401.0000{i}", "title": t, "abstract": f"alert dialog test {t}",
                "categories": ["cs.CR"], "url": "javascript:alert(1)"} for i, t in enumerate(HOSTILE)]
    corpus = write_jsonl(tmp / "papers.jsonl", lines + hostile + LINKY)
    build_index([corpus], tmp / "index", real_encoder, with_map=True)
    SERVED["index"] = tmp / "index"
    ReadingLists(tmp / "lists.sqlite").add(LIST_NAME, [Paper(id="2401.00011", title="t",
                                                             abstract="")])
    port = free_port()
    exe = Path(sys.executable).parent / "papersift"
    proc = subprocess.Popen([str(exe), "ui", "--port", str(port), "--index", str(tmp / "index")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1",
                                 "PAPERSIFT_LISTS": str(tmp / "lists.sqlite")})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("papersift ui did not answer within 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def page(server, request):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialogs = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        pg = browser.new_page(viewport={"width": 1300, "height": 1000})
        pg.set_default_timeout(60_000)
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pg.dialogs = dialogs
        try:
            yield pg
        finally:  # the last view, for a failure's post-mortem (tests/artifacts/)
            pg.screenshot(path=ARTIFACTS / f"last-{request.node.name}.png")
            browser.close()
    assert dialogs == [], f"JavaScript dialogs fired: {dialogs}"


def ask(page, text: str) -> None:
    box = page.get_by_label(QUESTION_LABEL)
    box.fill(text)
    box.press("Enter")


def test_question_paper_related_filter_reload_and_back(page, server):
    page.goto(server)
    ask(page, "teaching a small model to rerank documents by distilling reasoning")
    first = page.locator("article.card h3 a", has_text="Distillation and Refinement of Reasoning")
    first.wait_for()
    assert page.locator("article.card h3").first.inner_text().startswith("1. Distillation")
    assert "q=teaching+a+small+model" in page.url
    page.screenshot(path=ARTIFACTS / "search.png")

    first.click()
    page.get_by_text("Related work").wait_for()
    assert "paper=2504.03947" in page.url
    page.screenshot(path=ARTIFACTS / "paper.png")
    related = page.locator("article.card h3 a").first  # the first related paper
    related_title = related.inner_text()
    related.click()
    page.locator("h2", has_text=related_title[:30]).wait_for()
    assert "paper=2504.03947" not in page.url

    page.go_back()  # browser history: back to the first paper page
    page.locator("h2", has_text="Distillation and Refinement").wait_for()
    page.locator("[class*='st-key-back'] button").click()
    page.locator("article.card h3", has_text="1. Distillation and Refinement").wait_for()

    page.get_by_label("Categories").click()
    page.get_by_role("option", name="cs.LG · Machine Learning (").first.click()
    page.keyboard.press("Escape")
    page.wait_for_url("**cat=cs.LG**")
    cards = page.locator("article.card h3 a")
    # the unfiltered best match is not in cs.LG: wait for the filtered list to replace it
    playwright.expect(cards.first).not_to_contain_text("Distillation and Refinement",
                                                       timeout=60_000)
    playwright.expect(cards.first).to_be_visible(timeout=60_000)  # the close matches
    page.locator("[class*='st-key-everything'] button").click()  # "Show less close papers too"
    page.wait_for_url("**all=1**")
    playwright.expect(cards).to_have_count(20, timeout=60_000)  # a full first page
    titles = cards.all_inner_texts()
    page.screenshot(path=ARTIFACTS / "filtered.png")

    shared = page.url
    page.goto(shared)  # a reload of a shared link reproduces the view
    playwright.expect(cards).to_have_count(len(titles), timeout=60_000)
    playwright.expect(cards).to_have_text(titles)
    playwright.expect(page.get_by_label(QUESTION_LABEL)).to_have_value(
        "teaching a small model to rerank documents by distilling reasoning")


def titles_on_screen(page, height: int) -> int:
    """Result titles wholly inside the first `height` pixels of the page."""
    boxes = [t.bounding_box() for t in page.locator("article.card h3").all()]
    return sum(1 for b in boxes if b and b["y"] >= 0 and b["y"] + b["height"] <= height)


def test_results_are_dense_links_with_keyboard_access(page, server):
    page.goto(server + "/?q=language+models+for+reasoning&all=1")
    titles = page.locator("article.card h3 a")
    playwright.expect(titles).to_have_count(20)
    assert titles_on_screen(page, 1000) >= 6  # 1300x1000 here; the issue asks 1400x1000
    hrefs = titles.evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert all(h.startswith("?q=language+models+for+reasoning&paper=") for h in hrefs)
    # the href itself opens the paper page (what a new tab or a copied link does)
    page.goto(server + "/" + hrefs[0])
    page.get_by_text("Related work").wait_for()
    page.go_back()
    titles.first.wait_for()

    page.mouse.click(1200, 980)  # nothing focused; "/" goes to the search box
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == QUESTION_LABEL
    stops = []
    for _ in range(4):  # each card: its title, then its toolbar
        page.keyboard.press("Tab")
        stops.append(page.evaluate("""() => { let a = document.activeElement;
            while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
            return a.tagName + ':' + a.innerText; }"""))
    assert stops[0].startswith("A:") and stops[1] == "BUTTON:Abstract"
    assert stops[2].startswith("A:") and stops[3] == "BUTTON:Abstract" and stops[0] != stops[2]
    page.keyboard.press("ArrowRight")  # along the toolbar
    assert page.evaluate("""() => { let a = document.activeElement;
        while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
        return a.innerText; }""") == "Similar"
    page.keyboard.press("Enter")  # the link works from the keyboard too
    page.wait_for_url("**similar=**")
    page.get_by_text("Papers similar to").wait_for()

    page.goto(server + "/?q=language+models+for+reasoning&all=1")
    titles.first.wait_for()
    page.mouse.wheel(0, 4000)
    page.locator("nav.pages a", has_text="Next →").click()  # the next page, from its top
    page.wait_for_url("**page=2**")
    page.locator("article.card .rank", has_text="21.").wait_for()
    page.wait_for_timeout(300)
    assert page.evaluate("window.scrollY") == 0 and titles_on_screen(page, 1000) >= 6
    # after a rerun the card's own controls still act once per click (no piled-up handlers)
    card = page.locator("article.card").first
    card.locator("button", has_text="Abstract").click()
    playwright.expect(card).to_have_class("card open")
    card.locator("button", has_text="Why this result").click()
    playwright.expect(card.locator(".why")).to_be_visible()
    card.locator("button", has_text="Cite").click()  # the real path: trigger -> dialog
    dialog = page.get_by_role("dialog")
    playwright.expect(dialog).to_contain_text("@misc{")
    page.keyboard.press("Escape")
    playwright.expect(dialog).to_have_count(0)
    card.locator("button", has_text="Save").click()
    playwright.expect(page.get_by_role("dialog")).to_contain_text("Save to a reading list")


def test_home_feed_and_phone_width(page, server):
    page.goto(server)
    page.locator("article.card").first.wait_for()
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == QUESTION_LABEL
    page.get_by_text("The 100 newest papers · 1–20 of 100").wait_for()
    # a typed date applies on Enter, and on Tab out of its day
    page.get_by_role("spinbutton", name="year, Published since").focus()
    page.keyboard.type("20250101")
    page.keyboard.press("Enter")
    page.wait_for_url("**since=2025-01-01**")
    page.get_by_role("spinbutton", name="year, Published until").focus()
    page.keyboard.type("20251130")
    page.keyboard.press("Tab")
    page.wait_for_url("**until=2025-11-30**")
    page.get_by_text("newest papers matching the filters").wait_for()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(server + "/?q=gaussian+splatting")
    page.locator("article.card").first.wait_for()
    page.wait_for_timeout(500)
    assert page.locator("[data-testid='stSidebar'][aria-expanded='true']").count() == 0
    box = page.locator("article.card").first.bounding_box()
    assert box["width"] > 300  # the cards take the phone's width
    field = page.get_by_label(QUESTION_LABEL).bounding_box()
    header = page.locator("[data-testid='stHeader']").bounding_box()
    assert field["y"] >= header["y"] + header["height"]  # not under the header
    page.screenshot(path=ARTIFACTS / "search-phone.png")


def test_hostile_titles_are_inert_text(page, server):
    page.goto(server + "/?q=alert+dialog+test")
    for title in HOSTILE:
        page.get_by_text(title, exact=False).first.wait_for()
    page.wait_for_timeout(1000)
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    page.screenshot(path=ARTIFACTS / "hostile.png")
    assert page.dialogs == []


def foreign_links(page, server: str) -> list[str]:
    """Links on the page to anywhere but the app itself and https arXiv or DOI."""
    hrefs = page.locator("a[href]").evaluate_all("els => els.map(e => e.href)")
    return [h for h in hrefs if not h.startswith(server + "/") and not (
        urlparse(h).scheme == "https" and urlparse(h).hostname in SAFE_HOSTS)]


def test_urls_addresses_and_list_names_never_become_links(page, server):
    page.goto(server + "/?q=alert+dialog+test")
    page.get_by_text("Linked title https:", exact=False).first.wait_for()
    page.get_by_text("Local paper mailto:", exact=False).first.wait_for()
    page.wait_for_timeout(500)
    assert foreign_links(page, server) == []
    # the only links holding such text are the titles, and they lead to the app's paper page
    evil = page.locator("a", has_text="evil").evaluate_all(
        "els => els.map(e => [e.getAttribute('href'), e.closest('h3') !== null])")
    assert sorted(h for h, _ in evil) == ["?q=alert+dialog+test&paper=2401.00011",
                                          "?q=alert+dialog+test&paper=linky-2"]
    assert all(in_title for _, in_title in evil)

    page.goto(server + "/?paper=2401.00011")  # the whole abstract and every author
    page.get_by_text("Mallory mallory@", exact=False).wait_for()
    page.get_by_text("<a href='https:", exact=False).wait_for()  # HTML shown as text
    page.get_by_role("button", name="Saved ✓").click()  # the list name as a button label
    page.get_by_text("✓ **Thesis** [x](https:", exact=False).wait_for()
    assert foreign_links(page, server) == []
    assert page.locator("a[href='https://arxiv.org/abs/2401.00011']").count() == 1
    assert page.locator("b, strong", has_text="bold").count() == 0
    assert page.locator("strong", has_text="Thesis").count() == 0

    page.goto(server + "/?paper=2401.00000")  # not in the list: "Add to" it, then the toast
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Add to **Thesis** [x](https:", exact=False).click()
    page.get_by_text("Saved to **Thesis** [x](https:", exact=False).wait_for()
    page.goto(server + "/?view=lists")  # the list page's buttons and header
    page.get_by_text("**Thesis** [x](https:", exact=False).first.click()
    page.get_by_role("heading", name="**Thesis** [x](https:").wait_for()
    assert foreign_links(page, server) == []
    assert page.locator("strong", has_text="Thesis").count() == 0
    page.screenshot(path=ARTIFACTS / "links.png")


def test_click_a_point_on_the_map_opens_its_paper(page, server):
    page.goto(f"{server}/?view=explore")
    page.get_by_text("Map of the field").wait_for()
    points = page.locator(".js-plotly-plot g.trace path.point")
    points.first.wait_for()
    assert points.count() == 120 + len(HOSTILE) + len(LINKY)  # every paper, hostile ones as text
    page.screenshot(path=ARTIFACTS / "explore.png")
    box = points.nth(7).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.get_by_text("Related work").wait_for()
    assert "paper=" in page.url and "view=explore" in page.url
    page.go_back()
    page.get_by_text("Map of the field").wait_for()
    assert "paper=" not in page.url


def test_the_running_app_shows_papers_from_three_updates(page, server, real_encoder, tmp_path):
    """Last in the module: it updates the served index under the running app."""
    from indexer.update import update_index

    for batch in range(3):
        title = f"Counting quokkas from drone photos, survey {batch}"
        update_index([write_jsonl(tmp_path / f"u{batch}.jsonl", [{
            "id": f"2611.{batch:05d}", "title": title, "published": "2026-11-01",
            "abstract": "We count quokka populations on Rottnest Island from aerial drone "
                        "images with a detector trained on few labels."}])],
            SERVED["index"], real_encoder)
        page.goto(f"{server}/?q=quokka+drone+census+{batch}")
        page.get_by_text(title).first.wait_for()
    page.screenshot(path=ARTIFACTS / "after-updates.png")
    gens = [p for p in SERVED["index"].iterdir() if p.name.startswith("gen-")]
    assert len(gens) <= 2  # superseded generations freed once the app let go of them
