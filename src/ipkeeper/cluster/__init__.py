"""The cluster plane: comm paths, membership, messages between daemons."""
