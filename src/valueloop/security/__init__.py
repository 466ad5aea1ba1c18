"""Defences the platform's HTTP edges share: bounded request bodies, throttled authentication."""
