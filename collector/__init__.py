"""virtwatch collector package (arrives with its issue)."""
