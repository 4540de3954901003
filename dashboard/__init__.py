"""virtwatch dashboard: a Dash app with pages (fleet, host, SLOs, events, alerts, correlation) reading tsdb.

    from dashboard.app import create_app
    from dashboard.context import DashboardContext
    app = create_app(DashboardContext(store, slos, state_dir))
    app.server  # a Flask WSGI app: serve it with gunicorn (virtwatch.wsgi) or `virtwatch dashboard`
"""
