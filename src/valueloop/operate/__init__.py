"""Operate: drift, performance and business KPIs, alerts, and the retraining loop that closes it."""
