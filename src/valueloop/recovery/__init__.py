"""Recovery: finding what a killed process left half-written, backups and restores."""
