"""Server-side copy: the façade as the client of a copy source (see handlers/copy.py).

- ``source``: the source URL and credentials, and whether it is on this façade;
- ``fetch``: reading it, over HTTP(S) with a bounded pool per host or from the data root;
- ``jobs``: the asynchronous Copy Blob job table;
- ``state``: the copy state a blob carries in its properties (x-ms-copy-*), and its updates;
- ``service``: one worker's fetcher and job table, built by ``create_app`` and handed to the
  handlers in their context (``Ctx.copy``).
"""

from reference_server.copy.service import COPY_SERVICE, CopyService

__all__ = ["COPY_SERVICE", "CopyService"]
