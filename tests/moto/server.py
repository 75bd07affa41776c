"""moto's server, with DynamoDB's write atomicity.

DynamoDB applies each request to an item atomically: two concurrent `UpdateItem ... ADD` never
read the same value. moto's server handles requests on threads and its DynamoDB backend takes
no lock, so concurrent updates of one item can interleave and both read the same value, which
real DynamoDB never does. This wrapper takes one lock around each DynamoDB request, so the
stand-in keeps the property the adapters rely on; every other service is served as moto
serves it (an SQS long poll must not hold up the rest).

Run as `python server.py -H 127.0.0.1 -p PORT`, with moto_server's arguments.
"""

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

_dynamodb = threading.Lock()
_serve = DomainDispatcherApplication.__call__


def _call(self, environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with _dynamodb:
            # The body is built inside the lock: moto returns it whole, not as a stream.
            body = _serve(self, environ, start_response)
            try:
                return list(body)
            finally:
                if hasattr(body, "close"):
                    body.close()
    return _serve(self, environ, start_response)


DomainDispatcherApplication.__call__ = _call

if __name__ == "__main__":
    sys.exit(main())
