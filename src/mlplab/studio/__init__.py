"""`mlplab studio`: a live training page for the classroom: set up a run, watch it learn, steer it, look inside.

Needs the ``serve`` extra (FastAPI, uvicorn), like `mlplab serve`. The pieces::

    session   Studio: the one run at a time, trained on its own thread through mlplab.train's own
              calls (an ordinary run directory); Hub: every event to every browser, never blocking
    feed      LiveFeed: the callback measuring what the page draws (curves, weights, confusion)
    inspect   Inspector: a copy of the model being trained, read by the drawing pad layer by layer
    app       create_studio_app: the page, the JSON API, the event stream, the token
    static/   index.html, the page: inline CSS and JavaScript, no external assets (works offline)

Steering itself (pause, stop, a new learning rate or momentum, recorded in the run's history) is
`mlplab.Steering`, a training callback any `fit` can take.

From Python::

    from mlplab.studio import create_studio_app
    app = create_studio_app("runs")          # then: uvicorn.run(app)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab.lazy import lazy_names

_EXPORTS = {"create_studio_app": "app", "Studio": "session", "LiveFeed": "feed", "Inspector": "inspect"}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mlplab.studio.app import create_studio_app as create_studio_app
    from mlplab.studio.feed import LiveFeed as LiveFeed
    from mlplab.studio.inspect import Inspector as Inspector
    from mlplab.studio.session import Studio as Studio

__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
