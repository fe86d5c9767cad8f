"""Jinja2 templates and static assets of the site (installed as ``reportgen.templates``)."""
