"""The lab: five ways of serving each capability compared on the team's own eval set, then the
drift test (``ragtune lab``)."""
