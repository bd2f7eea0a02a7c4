"""The run-failure alert: a failed step of the nightly job is POSTed to a webhook.

Off unless ``LTV_ALERT_WEBHOOK_URL`` is set (:func:`ltv_pipeline.settings.alert_webhook_url`).
A hook on the job rather than a run-failure sensor, so that it fires in ``ltv run`` too,
where no daemon runs. The body is JSON with a ``text`` field, which Slack's and Teams' incoming
webhooks show as the message, and the run's fields for anything else.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import dagster as dg

from ltv_pipeline import settings

#: Seconds to wait for the webhook; a slow endpoint must not hold the run's end.
ALERT_TIMEOUT_SECONDS = 10


def alert_payload(run_id: str, job: str, step: str, error: str) -> dict[str, str]:
    """The JSON body of one alert."""
    return {
        "text": f"ltv-pipeline: step {step} of run {run_id} ({job}) failed: {error[:500]}",
        "run_id": run_id,
        "job": job,
        "step": step,
        "error": error[:4000],
    }


@dg.failure_hook(name="alert_webhook")
def alert_webhook(context: dg.HookContext) -> None:
    """POST the failed step to ``LTV_ALERT_WEBHOOK_URL``, if set."""
    url = settings.alert_webhook_url()
    if url is None:
        return
    error = context.op_exception
    body = alert_payload(
        context.run_id, context.job_name, context.step_key, str(error) if error else "unknown"
    )
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    host = urllib.parse.urlsplit(url).netloc  # the path of a webhook URL is often its secret
    try:
        with urllib.request.urlopen(request, timeout=ALERT_TIMEOUT_SECONDS) as response:
            response.read()
    except OSError as exc:  # the run has failed already: say the alert did not go, no more
        context.log.error(f"the failure alert to {host} was not sent: {exc}")
    else:
        context.log.info(f"failure alert sent to {host}")
