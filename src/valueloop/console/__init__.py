"""The web console: server-rendered pages over the same service layer as the CLI and the HTTP API.

``valueloop server`` mounts it at ``/`` beside the control plane at ``/api``. Every page has a JSON
twin (``?format=json`` or ``.json``); every static file is vendored under ``static/``.
"""
