"""Quota enforcement at the API edge (being built in issue 3).

Contract:
* ``charge_api_call(request, principal)``: called by ``api._auth.authenticate`` for every request
  that names a customer; counts one API call for that customer, or raises ``QuotaExceeded``
  (HTTP 429) without counting when a hard limit is reached.
* ``charge_event(request, principal, customer_id)``: called by whatever starts a workflow run
  (run now, webhooks, schedules) before it starts; counts one event or raises ``QuotaExceeded``.
"""
