"""After every upload the runner lists what landed and checks it against the manifest: a
client that silently writes short or wrong objects fails its step, and `verified` is real."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import runner as runner_mod
from harness import scenario
from harness.drivers.base import Driver, StepContext
from harness.http import BlobHttp
from harness.results import StepResult
from harness.runner import Runner, read_results

SCENARIO = """\
name: upload-verify
datasets:
  - name: d
    seed: 9
    files:
      - {count: 4, size_min: 1KiB, size_max: 8KiB}
steps:
  - {name: up, driver: DRIVER, operation: upload, dataset: d, prefix: v}
criteria:
  - {step: up, expect: verified_objects == 4}
"""


class ShortWriter(Driver):
    """A client that reports success but drops the last byte of every other object."""

    name = "short-writer"
    operations = ("upload",)

    def prepare(self, ctx: StepContext) -> None:
        pass

    def run(self, ctx: StepContext) -> StepResult:
        assert ctx.dataset is not None
        ep = ctx.endpoint
        http = BlobHttp(ep.blob_url, ep.account, ep.key)
        http.request("PUT", ctx.container, query={"restype": "container"})
        total = 0
        for i, entry in enumerate(ctx.dataset.files):
            body = (ctx.dataset.root / entry.path).read_bytes()
            body = body[:-1] if i % 2 else body
            http.request(
                "PUT", ctx.container, ctx.prefix + entry.path, body=body,
                headers={"x-ms-blob-type": "BlockBlob"},
            )  # fmt: skip
            total += len(body)
        http.close()
        return ctx.result(driver=self.name, objects=len(ctx.dataset.files), bytes=total)

    def versions(self) -> dict[str, str]:
        return {"short-writer": "1"}

    def pids(self) -> list[int]:
        return []


def _run(tmp_path: Path, driver: str) -> runner_mod.RunOutcome:
    (tmp_path / "s.yaml").write_text(SCENARIO.replace("DRIVER", "sdk"))
    sc = scenario.load(tmp_path / "s.yaml")
    sc.steps[0].driver = driver
    runner = Runner(sc, out=tmp_path / "reports", cache_dir=tmp_path / "cache")
    return runner.run()


def test_short_objects_fail_the_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = runner_mod.make_driver
    monkeypatch.setattr(
        runner_mod, "make_driver", lambda n: ShortWriter() if n == "short-writer" else real(n)
    )
    outcome = _run(tmp_path, "short-writer")
    up = read_results(outcome.run_dir).iloc[0]
    assert not up.ok and up.verified_objects == 2 and up.failed == 2
    assert up.error.startswith("upload verification failed: 2 objects / ")
    assert "2 mismatched" in up.error
    assert outcome.exit_code == 1
    (verdict,) = outcome.verdicts
    assert verdict.errored and "upload verification failed" in verdict.evidence


@pytest.mark.sdk
def test_a_real_upload_is_verified(tmp_path: Path) -> None:
    outcome = _run(tmp_path, "sdk")
    up = read_results(outcome.run_dir).iloc[0]
    assert up.ok, up.error
    assert up.verified_objects == 4 and up.verified_bytes == up.bytes
    assert up.extra["verify_md5_checked"] == 4  # single-shot Put Blobs carry Content-MD5
    assert outcome.exit_code == 0 and outcome.verdicts[0].passed
