"""virtwatch collector: the agent that watches libvirtd and its guests on one host and writes what it sees."""
