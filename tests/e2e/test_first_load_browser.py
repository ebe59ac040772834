"""The first page load after the server starts: a signed-out visitor sees no page but sign-in.

This module starts its own server (live_app is per module), so its test makes that
server's very first script run. Streamlit lists every script of a folder named pages/ in
the sidebar during that run unless told the router owns them (ui/streamlit_server.py, which
every way of starting Quorum goes through).
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import LiveApp, screenshot, settle

# Remembers every navigation entry that is ever drawn, however briefly, from the first byte.
_RECORD_NAVIGATION = """
window.__quorumNavSeen = [];
new MutationObserver(() => {
  const selector = '[data-testid="stSidebarNav"] a, [data-testid="stSidebarNavLink"], '
    + '[data-testid="stSidebarNavItems"] li, [data-testid="stTopNavLink"]';
  for (const element of document.querySelectorAll(selector)) {
    const text = (element.textContent || '').trim();
    if (!window.__quorumNavSeen.includes(text)) window.__quorumNavSeen.push(text);
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def test_the_first_load_lists_no_page_but_sign_in(live_app: LiveApp, page: Any) -> None:
    page.add_init_script(_RECORD_NAVIGATION)
    page.goto(live_app.url)
    page.get_by_role("textbox", name="Username").wait_for()
    settle(page)
    page.wait_for_timeout(1500)  # any late navigation message has arrived by now
    seen = page.evaluate("window.__quorumNavSeen")
    screenshot(page, "first-load")
    assert [entry for entry in seen if entry != "Sign in"] == []
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
