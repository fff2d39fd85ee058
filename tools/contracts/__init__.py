"""Writes the published contract artefacts under ``contracts/`` from the code, and checks them.

    python -m tools.contracts           write schemas/, asyncapi.json, openapi/
    python -m tools.contracts --check   exit 1 if the committed files differ (drift)

``schemas/<event type>.json`` is the CloudEvents envelope with ``data`` replaced by the
event's data model and ``type`` pinned (schemas.py); ``asyncapi.json`` describes every topic,
its dead-letter topic and which service sends or receives it (asyncapi.py);
``openapi/<service>.json`` is each service app's OpenAPI document (openapi.py). A published
event schema is never overwritten by an incompatible one (compatibility.py): bump the
version (``…v2``) instead. The services come from ``services.registry``.
"""
