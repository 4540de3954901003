"""virtwatch alerts package (arrives with its issue)."""
