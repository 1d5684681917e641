"""One module per input topic."""
