"""Running flows without a person at the keyboard: on a schedule, or on queue workers.

`config` types config/schedules.yaml (jobs: cron, timezone, flow, inputs, jitter, overlap and
misfire policy), `scheduler` runs them in the foreground on APScheduler (`crewkit schedule run`),
`trigger` checks the JSON payload an external trigger hands to `crewkit run --trigger-payload` /
`main.run_with_trigger`, and `queue` / `worker` hand runs to Celery workers. Nothing heavy is
imported here: `crewkit --help` stays fast.
"""
