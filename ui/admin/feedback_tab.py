"""The Feedback review tab: filters, the table, exports, accepting or rejecting a correction. UI only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Actor
from core.chat import (
    FeedbackFilters,
    export_feedback_csv,
    export_feedback_xlsx,
    feedback_raters,
    list_feedback,
    review_feedback,
)
from core.platform.statuses import REVIEW_STATUSES
from ui import untrusted
from ui.admin.widgets import (
    ALL,
    RATING_WORDS,
    apply_action,
    choice,
    cut,
    export_buttons,
    when,
)
from ui.common import date_range_input, run_action


def feedback_tab(actor: Actor) -> None:
    raters = dict(run_action(lambda: feedback_raters(actor=actor)).value or [])
    rating_col, status_col, user_col, dates_col = st.columns([1, 1, 1, 2])
    rating = rating_col.selectbox("Rating", [ALL, "good", "bad"], key="admin_fb_rating")
    status = status_col.selectbox("Review status", [ALL, *REVIEW_STATUSES], key="admin_fb_status")
    user_id = user_col.selectbox(
        "User", [None, *raters], format_func=lambda uid: ALL if uid is None else raters[uid], key="admin_fb_user"
    )
    with dates_col:
        since, until = date_range_input("Between", key="admin_fb_dates")
    filters = FeedbackFilters(
        rating=choice(rating), review_status=choice(status), user_id=user_id, since=since, until=until
    )
    items = run_action(lambda: list_feedback(actor=actor, filters=filters)).value or []

    # The columns a reviewer acts on come first and long texts are cut, so Status and
    # Reviewer are on screen; the full question, answer and sources are in the panel below.
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Id": item.id,
                    "Status": item.review_status.title(),
                    "Rating": RATING_WORDS.get(item.rating, item.rating),
                    "Question": cut(item.question),
                    "Correction": cut(item.correction or ""),
                    "User": item.username,
                    "Reviewer": item.reviewer or "",
                    "Date": when(item.created_at),
                    "Trusted": item.trusted,
                    "Answer": cut(item.answer),
                    "Note": cut(item.reviewer_note or ""),
                    "Sources": cut("; ".join(item.sources)),
                }
                for item in items
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "Id": st.column_config.NumberColumn(width="small"),
            "Status": st.column_config.TextColumn(width="small"),
            "Question": st.column_config.TextColumn(width="medium"),
            "Correction": st.column_config.TextColumn(width="medium"),
            "Trusted": st.column_config.CheckboxColumn(width="small"),
        },
    )
    export_buttons(
        "feedback",
        csv=lambda: export_feedback_csv(actor=actor, filters=filters),
        xlsx=lambda: export_feedback_xlsx(actor=actor, filters=filters),
    )
    if not items:
        st.caption("No feedback matches these filters.")
        return

    st.subheader("Review")
    items_by_id = {i.id: i for i in items}  # stable labels, as for the user picker
    picked_item = st.selectbox(
        "Feedback",
        list(items_by_id),
        format_func=lambda item_id: (
            f"#{item_id} · {items_by_id[item_id].username} · {items_by_id[item_id].question[:70]}"
        ),
        key="admin_fb_pick",
    )
    if picked_item is None:
        return
    item = items_by_id[picked_item]
    st.caption(f"Rated {item.rating} · review status {item.review_status}")
    st.markdown(f"**Question** ({item.username}, {when(item.created_at)})")
    st.markdown(f"> {untrusted.plain(item.question) or '—'}")
    st.markdown("**Answer**")
    st.markdown(untrusted.markdown(item.answer))
    if item.sources:
        st.caption("Sources: " + " · ".join(untrusted.plain(source) for source in item.sources))
    if item.correction:
        st.markdown("**Correction**")
        st.info(untrusted.plain(item.correction), icon=":material/edit_note:")
    with st.form(f"admin_review_{item.id}"):
        decision = st.radio(
            "Review status", list(REVIEW_STATUSES), index=REVIEW_STATUSES.index(item.review_status), horizontal=True
        )
        note = st.text_area("Reviewer note", value=item.reviewer_note or "", max_chars=2000)
        if item.correction:
            st.caption("Accepting makes this correction trusted context: later similar questions get it as a source.")
        if st.form_submit_button("Save review", type="primary"):
            apply_action(
                lambda: review_feedback(actor=actor, feedback_id=item.id, status=decision, note=note),
                f"Feedback #{item.id} marked {decision}.",
            )
