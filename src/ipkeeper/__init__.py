"""ipkeeper: keeps virtual IP addresses alive across a cluster of Linux servers."""

__version__ = "0.1.0"
