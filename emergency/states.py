"""The states of an incident, in the order it goes through them (never back).

Apart from emergency/incidents.py so that the command line can offer them without importing the
analyses.
"""
from __future__ import annotations

INCIDENT_STATES = ("planned", "active", "closed")
STARTING_STATES = INCIDENT_STATES[:2]  # an incident is saved as a plan (an exercise) or as under way
