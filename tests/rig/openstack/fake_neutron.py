"""Stand-in for the Neutron API, just enough for servers booted with networks='none'.

nova insists on a network endpoint even then: showing a server lists its ports
(security groups) and an evacuation looks up the ports again. Our agents never call
Neutron. This answers every collection GET with an empty list, quotas with
"unlimited", DELETE with 204, and anything else with a Neutron-style 404; each
request is logged. Stdlib only.

Usage: fake_neutron.py BIND PORT LOGFILE
"""
import json
import re
import sys
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def make_app(log, base_url):
    def app(environ, start_response):
        method, qs = environ["REQUEST_METHOD"], environ.get("QUERY_STRING", "")
        path = re.sub(r"\.json$", "", environ.get("PATH_INFO", "/").rstrip("/"))
        log.write("%s %s %s%s\n" % (time.strftime("%H:%M:%S"), method, path, "?" + qs if qs else ""))

        def reply(status, body):
            data = json.dumps(body).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]

        if path == "":
            return reply("200 OK", {"versions": [{"id": "v2.0", "status": "CURRENT",
                                                  "links": [{"rel": "self", "href": base_url + "/v2.0/"}]}]})
        if path == "/v2.0":
            return reply("200 OK", {"resources": []})
        parts = path.split("/")[2:]
        if method == "GET" and parts and parts[0] == "quotas":
            return reply("200 OK", {"quota": {k: -1 for k in ("port", "network", "subnet",
                                                             "security_group", "floatingip")}})
        if method == "GET" and len(parts) == 1:
            return reply("200 OK", {parts[0].replace("-", "_"): []})
        if method == "DELETE":
            start_response("204 No Content", [])
            return [b""]
        return reply("404 Not Found", {"NeutronError": {
            "type": "NotFound", "message": "rig fake neutron: %s %s not implemented" % (method, path),
            "detail": ""}})
    return app


def main(argv):
    bind, port, logfile = argv[1], int(argv[2]), argv[3]
    log = open(logfile, "a", buffering=1)
    srv = make_server(bind, port, make_app(log, "http://%s:%d" % (bind, port)),
                      server_class=_Server, handler_class=_QuietHandler)
    srv.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
