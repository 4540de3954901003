"""How the host page labels a guest: by its newest state, with its past failure kept as history ("↻ recovered ·
failed 2 h ago"), so a guest that failed and runs again no longer reads as failed."""

from __future__ import annotations

from tsdb.times import format_duration as duration_text

#: states in which a guest that failed is still failed (libvirt's words, tsdb.schema.DOMAIN_STATES)
FAILED_STATES = ("crashed", "shut off", "unknown")
#: label -> the row's look (css class of the row); the label's words and symbol always say it too
LABEL_CLASSES = {"failed": "row-failing", "recovered": "row-recovered", "wedged": "row-failing"}


def guest_label(state: str, failed_at_ns: int | None, end_ns: int, partial: bool = False) -> tuple[str, str]:
    """Return (label, look) for a guest: "✖ crashed", "✖ failed 20 min ago", "↻ recovered · failed 2 h ago", or
    "" for a guest with no failure in the range; "‖ wedged" is added while its stats are partial."""
    label, look = "", ""
    if state == "crashed":
        label, look = "✖ crashed", "failed"
    elif failed_at_ns is not None:
        ago = f"{duration_text(max(0.0, (end_ns - failed_at_ns) / 10**9))} ago"
        if state in FAILED_STATES:
            label, look = f"✖ failed {ago}", "failed"
        else:
            label, look = f"↻ recovered · failed {ago}", "recovered"
    if partial:
        label, look = (label + " · " if label else "") + "‖ wedged", look if look == "failed" else "wedged"
    return label, look
