"""HTTP routes, one module per resource; each module's ``router(limits)`` builds its routes.

``health``   GET /healthz, /readyz, /metrics
``events``   POST /v1/events
``recommendations``  GET /v1/users/{user_id}/recommendations, POST /v1/recommendations
``items``    GET /v1/items/{item_id}/similar
``explain``  GET /v1/users/{user_id}/explanation, POST /v1/influence (API key, as events)
"""
