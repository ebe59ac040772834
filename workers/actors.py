"""Every actor, registered on the broker. `dramatiq workers.actors` runs them all."""

from workers import broker  # noqa: F401  (the broker must be set up before actors are declared)
from workers import audio_actors, document_actors, maintenance_actors  # noqa: F401
