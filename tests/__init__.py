"""ForgeSyte tests."""
