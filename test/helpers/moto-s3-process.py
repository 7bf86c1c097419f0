"""An S3-compatible server with conditional writes, for integration tests: moto's server (moto
5.2.5, pinned in requirements.txt) on a free loopback port. test/helpers/s3-server.ts spawns it as

    <venv>/bin/python test/helpers/moto-s3-process.py

Why moto: it implements PutObject's If-None-Match and If-Match (s3rver 3.7.1 ignores both), so
the ArtifactStore's conditional writes and the registry's races are tested against a real server.

Why one request at a time: moto checks a condition and then writes without a lock, so two
conditional writes served by two threads can both pass their check (measured here with 8 clients:
2 of 200 create-if-absent races had two winners, and 4 of 200 compare-and-swap increments were
lost). AWS S3 makes the check and the write atomic. A lock around the whole app restores that
guarantee, so the tests exercise our code against S3's semantics rather than moto's race.

Protocol: prints one JSON line {"port": <n>} on stdout once it listens on 127.0.0.1. Objects live
in memory. It exits on SIGTERM/SIGINT and when stdin closes (the parent went away, however it
died), so no orphan server outlives a test run.
"""

import json
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


def one_request_at_a_time(app):
    lock = threading.Lock()

    def serve(environ, start_response):
        with lock:
            # Produce the whole response under the lock: the request body is read and the
            # object written inside app(), the condition checked before it.
            return list(app(environ, start_response))

    return serve


def main() -> None:
    app = one_request_at_a_time(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)

    def stop(*_args) -> None:
        # shutdown() waits for serve_forever() to return: call it off the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def stop_when_parent_goes() -> None:
        sys.stdin.read()
        stop()

    threading.Thread(target=stop_when_parent_goes, daemon=True).start()
    print(json.dumps({"port": server.server_port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
