"""Locust user classes of the ATS-1.0 load stage (ATS §12): an open model at a constant rate.

Run only as a locust subprocess (``python -m locust -f …/locustfile.py``), never imported next
to pytest or requests: locust patches the standard library with gevent when it starts.

Each worker holds one ``AtsLoadUser``. Worker *i* of *n* sends its share of the phase's rate,
``rate / n``, at scheduled instants offset by ``i / rate``, so the workers together send at the
phase's rate. A send never waits for an earlier answer: every request runs in its own greenlet
of a pool sized for the rate times the client timeout (open model). Latency is measured from the
scheduled instant, so a node that slows down cannot hide behind requests not sent
(coordinated omission). Failures are non-2xx answers, transport errors and timeouts.

The plan (``--ats-plan``, JSON without secrets) reaches every worker through locust's forwarding
of custom arguments; the app secret comes from the ``ATS_LOAD_SECRET`` environment variable of
each worker and is never written anywhere. A worker sends its raw records to the master in one
message; the master writes them to ``--ats-out`` and quits once every worker has reported.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.ssl
from gevent.pool import Pool
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WorkerRunner

from conformance.load.plan import LoadPlan, LoadProfileError
from conformance.signing import sign_headers

SECRET_ENV = "ATS_LOAD_SECRET"
RESULT_MESSAGE = "ats_load_result"
# Seconds a worker waits for its last answers once its last request was sent, beyond the
# client timeout.
_DRAIN_GRACE_S = 1.0


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument("--ats-plan", default="", include_in_web_ui=False, help="load plan (JSON)")
    parser.add_argument(
        "--ats-out", default="", include_in_web_ui=False, help="merged results (master only)"
    )


class _Collector:
    """The master's collector: one result message per worker, written once all have come."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        options = environment.parsed_options
        plan = json.loads(options.ats_plan) if options is not None and options.ats_plan else {}
        self.expected = int(plan.get("workers", 1))
        self.out = options.ats_out if options is not None else ""
        self.results: dict[int, Any] = {}
        self.written = False

    def receive(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        self.results[int(data["worker"])] = data
        if len(self.results) >= self.expected:
            self.write()
            # Every worker has reported: the stage is over before its run-time bound.
            if environment.runner is not None:
                gevent.spawn(environment.runner.quit)

    def write(self, **_: Any) -> None:
        if self.written or not self.out:
            return
        self.written = True
        document = {
            "expected": self.expected,
            "complete": len(self.results) >= self.expected,
            "workers": [self.results[k] for k in sorted(self.results)],
        }
        with open(self.out, "w", encoding="utf-8") as sink:
            json.dump(document, sink)


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner):
        return
    collector = _Collector(environment)
    runner.register_message(RESULT_MESSAGE, collector.receive)
    # A worker that never reports still leaves the others' records for the runner to judge.
    environment.events.quitting.add_listener(collector.write)


def _ssl_context_factory(bundle: str) -> Callable[..., Any]:
    def factory(**_: Any) -> Any:
        return gevent.ssl.create_default_context(cafile=bundle)

    return factory


def _error_code(body: bytes | None) -> str | None:
    try:
        document = json.loads(body or b"")
    except ValueError:
        return None
    code = document.get("code") if isinstance(document, dict) else None
    return code if isinstance(code, str) else None


def _refusal(environment: Environment) -> str | None:
    # The worker sends the load, so it re-checks the plan it was handed, wherever that came from
    # (a remote worker trusts no master): the target's origin only, within the code's ceilings.
    options = environment.parsed_options
    try:
        plan = LoadPlan.from_json(options.ats_plan if options is not None else "{}")
        plan.check_safety()
        plan.check_caps()
    except (LoadProfileError, TypeError, KeyError, ValueError) as exc:
        return str(exc)
    return None


class AtsLoadUser(FastHttpUser):
    """A user is one worker's share of every phase of the plan, sent at scheduled instants."""

    host = "http://127.0.0.1"

    def __init__(self, environment: Environment) -> None:
        options = environment.parsed_options
        self.plan: dict[str, Any] = json.loads(options.ats_plan if options is not None else "{}")
        timeout = float(self.plan["client_timeout_s"])
        # ATS §12: client timeout 5 s; the pool never limits the open model below the plan.
        self.network_timeout = timeout
        self.connection_timeout = timeout
        self.concurrency = max(int(p["max_in_flight"]) for p in self.plan["phases"])
        self.insecure = False
        if self.plan.get("ca_bundle"):
            self.ssl_context_factory = _ssl_context_factory(self.plan["ca_bundle"])
        self.host = self.plan["host"]
        super().__init__(environment)

    @task
    def run_plan(self) -> None:
        """Every phase of the plan in order, then one result message to the master."""
        runner = self.environment.runner
        index = max(int(getattr(runner, "worker_index", 0)), 0)
        secret = os.environ.get(SECRET_ENV, "")
        report: dict[str, Any] = {"worker": index, "phases": [], "error": None}
        refusal = _refusal(self.environment)
        if refusal is not None:
            report["error"] = f"worker {index} refused the plan: {refusal}"
        elif not secret:
            report["error"] = f"{SECRET_ENV} is not set in the environment of worker {index}"
        else:
            for phase in self.plan["phases"]:
                report["phases"].append(self._run_phase(phase, index, secret))
        if runner is not None:
            runner.send_message(RESULT_MESSAGE, report)
        raise StopUser()

    def _run_phase(self, phase: dict[str, Any], index: int, secret: str) -> dict[str, Any]:
        workers = int(self.plan["workers"])
        rate = float(phase["rate_per_s"])
        share = rate / workers
        warmup, window = float(phase["warmup_s"]), float(phase["window_s"])
        count = math.ceil((warmup + window) * share)
        records: list[list[Any]] = []
        pool = Pool(int(phase["max_in_flight"]))
        body: str = phase["body"] or ""
        # Offsets in the records count from the phase's common origin, so that the workers'
        # interleaved schedules stay apart in the merged timeline.
        origin = time.monotonic()
        start = origin + index / rate
        measured_from = origin + warmup
        for k in range(count):
            scheduled = start + k / share
            delay = scheduled - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            waiting = time.monotonic()
            pool.wait_available()
            waited = time.monotonic() - waiting
            sink = records if scheduled >= measured_from else None
            pool.spawn(self._send, phase, body, secret, scheduled, waited, measured_from, sink)
        pool.join(timeout=float(self.plan["client_timeout_s"]) + _DRAIN_GRACE_S)
        pool.kill(block=False)
        return {
            "name": phase["name"],
            "scheduled": sum(1 for k in range(count) if start + k / share >= measured_from),
            "records": records,
        }

    def _send(
        self,
        phase: dict[str, Any],
        body: str,
        secret: str,
        scheduled: float,
        waited: float,
        measured_from: float,
        sink: list[list[Any]] | None,
    ) -> None:
        method, target = phase["method"], phase["target"]
        # A fresh timestamp and nonce for every request (ATS-AUTH-05).
        headers = sign_headers(
            method=method,
            target=target,
            body=body.encode("utf-8"),
            app_id=self.plan["app_id"],
            secret=secret,
            signature_method=self.plan["signature_method"],
        )
        if phase["body"] is not None:
            headers["Content-Type"] = "application/json"
        sent = time.monotonic()
        status: int = 0
        code: str | None = None
        try:
            with gevent.Timeout(float(self.plan["client_timeout_s"])):
                response = self.client.request(
                    method, target, data=body or None, headers=headers, name=phase["name"]
                )
            status = int(response.status_code or 0)
            if status == 0:
                code = "TRANSPORT_ERROR"
            elif not 200 <= status < 300:
                code = _error_code(response.content)
        except gevent.Timeout:
            code = "TIMEOUT"
        done = time.monotonic()
        if sink is not None:
            # [scheduled offset in the window (s), latency from the scheduled instant (ms),
            #  generator lag (ms), wait for a free slot (ms), status (0: no answer), ATS code]
            sink.append(
                [
                    round(scheduled - measured_from, 4),
                    round((done - scheduled) * 1000, 3),
                    round(max(sent - scheduled - waited, 0.0) * 1000, 3),
                    round(waited * 1000, 3),
                    status,
                    code,
                ]
            )
