"""Workers: the loop that claims jobs and the executor that analyses one in a child process."""
