"""Tests of the storage implementations."""
