"""Take the README's screenshots of a running Quorum: `python scripts/screenshots.py URL USER PASSWORD`.

Uses Debian's chromium through Playwright (never `playwright install`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PAGES = [
    ("home", "Home"),
    ("ingestion-hub", "Ingestion Hub"),
    ("transcripts", "Transcripts & Minutes"),
    ("action-items", "Action items"),
    ("chat", "Chat"),
    ("admin", "Admin"),
    ("account", "Account"),
]


QUESTION = "How many days can employees work remotely?"


def _settle(page: Page) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(2500)
    # Until the run ends, elements of the run before are still drawn (faded).
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    # Widgets whose code is still loading are drawn as grey placeholders.
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')")


def main(url: str, username: str, password: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 950})
        page.set_default_timeout(30_000)
        page.goto(url)
        page.get_by_role("textbox", name="Username").wait_for()
        _settle(page)
        page.screenshot(path=str(OUT / "login.png"))
        page.get_by_role("textbox", name="Username").fill(username)
        page.get_by_role("textbox", name="Password").fill(password)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_text("Signed in as").wait_for()
        for slug, title in PAGES:
            page.get_by_role("link", name=title).first.click()
            _settle(page)
            if slug == "chat" and QUESTION:
                # The page opens the last chat; ask in a new one so the shot shows a cited answer.
                page.get_by_role("button", name="New chat").click()
                _settle(page)
                box = page.get_by_placeholder("Ask a question")
                box.fill(QUESTION)
                box.press("Enter")
                page.get_by_test_id("stChatMessage").nth(1).wait_for()
                _settle(page)
                page.evaluate("window.scrollTo(0, 0)")
                _settle(page)
            page.screenshot(path=str(OUT / f"{slug}.png"), full_page=True)
            print(f"saved {OUT / slug}.png")
        # The Speakers tab of the recording Transcripts & Minutes opens (the newest).
        page.get_by_role("link", name="Transcripts & Minutes").first.click()
        _settle(page)
        page.get_by_role("tab", name="Speakers").click()
        _settle(page)
        page.screenshot(path=str(OUT / "speakers.png"), full_page=True)
        print(f"saved {OUT / 'speakers'}.png")
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
