"""A toy fourth API for the dev server, registered from the test tree only (see ``emulator.py``)."""
