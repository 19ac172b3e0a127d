"""Jobs: the model, its states, and the store that is also the FIFO queue."""
