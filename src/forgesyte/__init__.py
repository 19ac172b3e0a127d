"""ForgeSyte: a self-hosted video-analysis job server."""

__version__ = "0.1.0"
