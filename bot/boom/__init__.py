"""BOOM, Kowalski's successor, as an alert source (issue 14). So far: `documents.py`, the pure adapter from
BOOM's documents to the alerts and histories the scorer reads."""
