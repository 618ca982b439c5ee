"""intake: the API reception counters call; the owner of every case's state."""
