"""valueloop."""
