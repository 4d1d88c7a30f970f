"""The HTTP API and the web page on top of it (``newspipe api``; docs/api.md).

* :mod:`pipeline.api.app` builds the FastAPI application (:func:`create_api`);
* :mod:`pipeline.api.auth` the bearer token (generated when unset or the default);
* :mod:`pipeline.api.articles`, :mod:`~pipeline.api.search`, :mod:`~pipeline.api.alerts` the
  routes; :mod:`pipeline.api.stream` Server-Sent Events from the alerts topic;
  :mod:`pipeline.api.atom` Atom feeds; ``static/`` the web page served at ``/``.
"""

from pipeline.api.app import create_api

__all__ = ["create_api"]
