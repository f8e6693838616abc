"""Test helpers for DAGs that use cyberark-ops: a real Airflow stack in a throwaway home."""
