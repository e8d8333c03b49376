"""moto's S3 server as `moto_server -H HOST -p PORT` runs it, with one change: conditional
writes (If-Match / If-None-Match) are made one at a time. moto checks the condition and then
writes in two steps, so two concurrent conditional PUTs of one key could both succeed, where
S3, SeaweedFS and Azurite let exactly one win; dvx's pushes rely on that."""

import signal
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        if environ.get("HTTP_IF_MATCH") or environ.get("HTTP_IF_NONE_MATCH"):
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
