"""`streamlit run` for Quorum: the Streamlit command line, with the pages/ folder left to the router.

Streamlit takes a folder named pages/ beside the main script for an old-style multipage app
until the first st.navigation call of the server process, so the very first run would list
(and route by URL) every script in pages/ before streamlit_app.py decides what a visitor may
see. Quorum routes all its pages with st.navigation, so it says so before the server starts.
Usage is that of `streamlit`: `python -m ui.streamlit_server run streamlit_app.py ...`.
"""

from __future__ import annotations

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli


def main() -> None:
    PagesManager.uses_pages_directory = False
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
