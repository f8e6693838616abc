"""Tests that look at Airflow as a user does: the real api-server's UI in headless Chromium."""
