"""Correlation: load against failures, host by host. A placeholder until the analysis library lands."""

from __future__ import annotations

import dash
from dash import html

from dashboard import views

dash.register_page(__name__, path="/correlation", name="Correlation", title="virtwatch: correlation", order=5)


def layout(**_params):
    """Return the placeholder: what the page will show, with the shell's range picker above it as everywhere."""
    return html.Div([
        views.page_header("Correlation", "load against failures"),
        views.empty_state("The load-versus-failure analysis is coming to this page.",
                          "It will show which host load (guests, calls per second, worker pool use) precedes "
                          "libvirtd hangs, crashes and restarts, over the time range picked above.",
                          kind="coming"),
    ])
