"""virtwatch dashboard package (arrives with its issue)."""
