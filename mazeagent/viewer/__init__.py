"""``mazeagent view``: a live maze viewer in the browser, on top of the notebook API (:mod:`mazeagent.api`).

:mod:`~mazeagent.viewer.session` answers the routes (validated, stateless), :mod:`~mazeagent.viewer.server` serves
them with the standard library, ``static/`` holds the page (plain HTML, CSS and JS; nothing is fetched from the
network). docs/viewer.md describes the page and the routes.
"""
