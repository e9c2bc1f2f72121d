#!/usr/bin/env python3
"""Checks herald's OpenAPI document against what herald does, with tools herald did not write:
openapi-spec-validator (PyPI) validates the document as OpenAPI 3.1, then every operation is
called over HTTPS with the examples the document gives (path and query parameters, request
body) and the credentials its `security` names, and each answer must be one the document
lists, its JSON body valid against the documented schema (openapi-schema-validator's OAS 3.1
validator).

    openapi_check.py --spec doc.json --host herald.test --port 8443 --cacert ca.pem \\
        --basic api_key:PASSWORD --bearer TOKEN

Prints one JSON line per operation: {"method", "path", "status", "ok", "error"}; exits 1 if
the document is invalid or any operation was not answered as documented.
"""

import argparse
import base64
import http.client
import json
import socket
import ssl
import sys
import urllib.parse

from openapi_spec_validator import validate
from openapi_schema_validator import OAS31Validator


def deref(node, spec):
    """The schema with every local $ref replaced by what it names."""
    if isinstance(node, dict):
        if "$ref" in node and node["$ref"].startswith("#/"):
            target = spec
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            return deref(target, spec)
        return {k: deref(v, spec) for k, v in node.items()}
    if isinstance(node, list):
        return [deref(v, spec) for v in node]
    return node


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spec", required=True)
    p.add_argument("--host", required=True, help="the name to ask for (SNI and Host)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connect", default="127.0.0.1")
    p.add_argument("--cacert", required=True)
    p.add_argument("--basic", required=True)
    p.add_argument("--bearer", required=True)
    args = p.parse_args()

    spec = json.load(open(args.spec))
    validate(spec)  # raises on an invalid document
    ctx = ssl.create_default_context(cafile=args.cacert)
    failed = False
    for path, item in spec["paths"].items():
        for method, op in item.items():
            params = op.get("parameters", [])
            url = path
            query = {}
            for prm in params:
                if "example" not in prm:
                    continue
                if prm["in"] == "path":
                    url = url.replace("{%s}" % prm["name"], urllib.parse.quote(str(prm["example"])))
                elif prm["in"] == "query":
                    query[prm["name"]] = prm["example"]
            if query:
                url += "?" + urllib.parse.urlencode(query)
            headers = {"Host": "%s:%d" % (args.host, args.port)}
            scheme = (op.get("security") or [{}])[0]
            if "basic" in scheme:
                headers["Authorization"] = "Basic " + base64.b64encode(args.basic.encode()).decode()
            if "bearer" in scheme:
                headers["Authorization"] = "Bearer " + args.bearer
            body = None
            rb = op.get("requestBody", {}).get("content", {}).get("application/json")
            if rb is not None:
                body = json.dumps(rb.get("example", {})).encode()
                headers["Content-Type"] = "application/json"
            # TLS to the address, checking the certificate against the host's name.
            conn = http.client.HTTPConnection(args.host, args.port, timeout=60)
            raw = socket.create_connection((args.connect, args.port), timeout=60)
            conn.sock = ctx.wrap_socket(raw, server_hostname=args.host)
            conn.request(method.upper(), url, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read()
            conn.close()
            entry = {"method": method.upper(), "path": url, "status": resp.status, "ok": True, "error": None}
            documented = op.get("responses", {})
            if str(resp.status) not in documented:
                entry["ok"] = False
                entry["error"] = "status %d is not documented (%s)" % (resp.status, ", ".join(documented))
            else:
                content = documented[str(resp.status)].get("content", {}).get("application/json")
                if content is not None:
                    try:
                        instance = json.loads(text)
                        OAS31Validator(deref(content["schema"], spec)).validate(instance)
                    except Exception as e:  # a body that is not what the document says
                        entry["ok"] = False
                        entry["error"] = "body does not match its schema: %s" % str(e).split("\n")[0]
            failed |= not entry["ok"]
            print(json.dumps(entry), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
