"""The control-plane HTTP API: one router per phase over the same service layer as the CLI."""
