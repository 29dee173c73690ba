"""Nipype graphs: the participant level (a branch per session) and the group level."""

# The participant-level graph's name: its folder in the work directory holds the node caches.
PARTICIPANT_WF = "hermesflow_participant_wf"
