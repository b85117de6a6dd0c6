#!/usr/bin/env python3
"""Local start-up time of a step handler binary, against a fake Lambda Runtime API on loopback.

    python3 scripts/lambda-startup.py TARGET/lambda/acquire_lock/bootstrap [runs]

Starts the binary (built for this machine, e.g. `cargo lambda build --profile lambda --features
lambda --bin acquire_lock`) with the environment Lambda gives it, and times from the process
start to its first `GET /runtime/invocation/next`: the handler's whole init (logging, SDK
settings, clients). It then hands the handler an event that is not the step's input and checks
that the answer is `POST /invocation/<id>/error` with `errorType` `InputInvalid`: the wire format
Step Functions matches `Retry`/`Catch` on. No AWS call is made: the event is refused before one,
and `AWS_ENDPOINT_URL` points at a closed loopback port anyway. Prints the figures; asserts only
the error's shape, never a time.
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NEXT = "/2018-06-01/runtime/invocation/next"


class Runtime(BaseHTTPRequestHandler):
    """One invocation per run: the first /next gets the event, later ones wait until the end."""

    def log_message(self, *args):  # the figures are the output, not the access log
        pass

    def do_GET(self):
        state = self.server.state
        if self.path != NEXT:
            self.send_error(404)
            return
        with state["lock"]:
            first = state["first_next"] is None
            if first:
                state["first_next"] = time.perf_counter()
        if not first:
            state["done"].wait(10)
            self.send_error(500)
            return
        body = json.dumps({"stage": 7}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                         "arn:aws:lambda:us-east-1:123456789012:function:aliasflow-AcquireLock")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        state = self.server.state
        length = int(self.headers.get("Content-Length", 0))
        payload = self.rfile.read(length)
        state["answer"] = (self.path, json.loads(payload or b"null"), time.perf_counter())
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        state["done"].set()


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # the killed handler's open /next, by design
        pass


def run_once(binary):
    server = Server(("127.0.0.1", 0), Runtime)
    server.state = {"lock": threading.Lock(), "first_next": None, "answer": None, "done": threading.Event()}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "aliasflow-AcquireLock",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "ALIASFLOW_TABLE": "aliasflow-history",
        "ALIASFLOW_BUCKET": "aliasflow-artifacts-123456789012-us-east-1",
    }
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        if not server.state["done"].wait(10):
            raise SystemExit(f"no answer from {binary} within 10 s")
    finally:
        process.kill()
        logs = process.communicate()[0].decode(errors="replace")
        server.shutdown()
    path, answer, answered = server.state["answer"]
    if path != "/2018-06-01/runtime/invocation/req-1/error" or answer.get("errorType") != "InputInvalid":
        raise SystemExit(f"unexpected answer {path} {answer}\n{logs}")
    return server.state["first_next"] - started, answered - started, answer, logs


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    run_once(binary)  # warms the page cache: the figures are start-up, not the first disk read
    inits, answers = [], []
    for _ in range(runs):
        init, answered, answer, logs = run_once(binary)
        inits.append(init * 1000)
        answers.append(answered * 1000)
    print(f"{binary}: {runs} runs")
    print(f"  process start -> first /next:      median {statistics.median(inits):6.2f} ms, max {max(inits):6.2f} ms")
    print(f"  process start -> error answered:   median {statistics.median(answers):6.2f} ms, max {max(answers):6.2f} ms")
    print(f"  error answer: {json.dumps(answer)}")
    failed = [line for line in logs.splitlines() if '"step failed"' in line]
    print(f"  log line: {failed[0] if failed else '(none)'}")


if __name__ == "__main__":
    main()
