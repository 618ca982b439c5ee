"""routing: moves each case to the offices that handle it."""
