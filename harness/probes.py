"""Probes that watch a target while a step runs, from the outside, as a user would.

``FirstObjectProbe`` answers "how soon is the first object available at the destination?": it
lists the step's container/prefix until an object appears that was not there, or had another
ETag, when the step started (so repeats that rewrite the same names are measured too).
Scenarios turn it on with the step option ``probe_first_object: true``; the result lands in
``extra.first_object_s`` (seconds from the start of the step).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from harness.drivers.base import StepContext
from harness.drivers.common import sdk_transport

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

POLL_INTERVAL_S = 0.02
PAGE = 1000  # objects compared per poll: new or rewritten ones (new ETag) count


class FirstObjectProbe:
    def __init__(self, ctx: StepContext, interval_s: float = POLL_INTERVAL_S) -> None:
        self.ctx = ctx
        self.interval_s = interval_s
        self.first_object_s: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._watch, name="first-object-probe", daemon=True)
        self._thread.start()

    def _first_page(self, ct: ContainerClient) -> dict[str, str]:
        pages = ct.list_blobs(
            name_starts_with=self.ctx.prefix or None, results_per_page=PAGE
        ).by_page()
        return {b.name: b.etag for b in next(pages, [])}

    def _watch(self) -> None:
        # the SDK is loaded only when a step asks for the probe: validating a scenario loads none
        from azure.core.exceptions import AzureError
        from azure.storage.blob import ContainerClient

        endpoint = self.ctx.endpoint
        credential = endpoint.key or endpoint.sas
        with ContainerClient(
            endpoint.blob_url, self.ctx.container, credential=credential, **sdk_transport(endpoint)
        ) as ct:
            try:
                before = self._first_page(ct)  # a repeat finds the previous repeat's objects
            except AzureError:
                before = {}  # the container may not exist yet: the copy creates it
            while not self._stop.is_set():
                try:
                    now = self._first_page(ct)
                    if any(before.get(name) != etag for name, etag in now.items()):
                        self.first_object_s = time.perf_counter() - self._t0
                        return
                except AzureError:
                    pass
                self._stop.wait(self.interval_s)

    def stop(self) -> float | None:
        """Stop watching; the seconds until the first object appeared, or None if none did."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self.first_object_s
