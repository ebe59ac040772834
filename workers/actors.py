"""Every actor, registered on the broker. `dramatiq workers.actors` runs them all."""

# The broker must be set up before any actor is declared (Dramatiq's rule).
from workers import broker  # noqa: F401

# isort: split
from workers import audio_actors, document_actors, maintenance_actors  # noqa: F401
