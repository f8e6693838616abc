"""Airflow hooks of cyberark-ops."""
