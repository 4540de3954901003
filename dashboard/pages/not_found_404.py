"""The page for any path no page serves."""

from __future__ import annotations

import dash
from dash import dcc, html

from dashboard import views

dash.register_page(__name__, path="/404", name="Not found", title="virtwatch: not found")


def layout(**_params):
    """Return the not-found empty state with a way back."""
    return html.Div([
        views.page_header("Not found"),
        views.empty_state("No page at this address.", "", kind="bad-input"),
        dcc.Link("Back to the fleet", href="/", className="button"),
    ])
