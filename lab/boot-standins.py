#!/usr/bin/env python3
"""The boot lab's stand-ins for the services outside a cluster, on its bridge.

One process, started by `pgimg lab up --boot` in a network namespace of its
own at the lab's stand-in address (198.18.0.0/15), standard library only:

* port 80, plain HTTP: the EC2 instance metadata service (IMDSv2: a token by
  `PUT /latest/api/token`, then `placement/region` and the instance role's
  credentials under `iam/security-credentials/`), as fetch-secrets and
  pgBackRest's `repo-s3-key-type=auto` ask it
  (docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html);
* port 443, HTTPS with the lab CA's certificate for every name the lab maps
  to this address:
  - AWS SSM Parameter Store's JSON protocol: `POST /` with
    `X-Amz-Target: AmazonSSM.GetParameter` and `{"Name": …}`, answered
    `{"Parameter": {"Name", "Value", …}}` (docs.aws.amazon.com/systems-manager/
    latest/APIReference/API_GetParameter.html); SigV4 is required to be
    present, not verified;
  - the secrets bundles of bare-metal hosts: `GET <path>/<host>.tar.gz` on the
    bundle host, from the build's `secrets/`;
  - S3 for pgBackRest, path or virtual-host style: GetObject, HeadObject,
    PutObject, DeleteObject, ListObjectsV2, DeleteObjects and multipart
    uploads, each bucket a directory.

Every request is appended to a log as one JSON line (method, host, path,
target, status): the boot test reads it to see how the secrets arrived.
Usage: boot-standins.py CONFIG.json
"""

import hashlib
import html
import json
import os
import re
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONFIG = json.load(open(sys.argv[1]))
LOG_LOCK = threading.Lock()
TOKEN = secrets.token_hex(16)
ROLE = "pgimg-boot-lab"
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
# An upload's parts until it completes: {upload_id: {part_number: path}}.
UPLOADS = {}


def log(entry):
    with LOG_LOCK, open(CONFIG["log"], "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def safe_key(key):
    """A key as a relative path that cannot leave its bucket's directory."""
    parts = [p for p in key.split("/") if p not in ("", ".", "..")]
    return "/".join(urllib.parse.quote(p, safe="") for p in parts)


def unquote_key(rel):
    return "/".join(urllib.parse.unquote(p) for p in rel.split("/"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", ctype="application/xml", headers=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        log(
            {
                "method": self.command,
                "host": self.headers.get("Host", ""),
                "path": self.path,
                "target": self.headers.get("X-Amz-Target", ""),
                "signed": "AWS4-HMAC-SHA256" in self.headers.get("Authorization", ""),
                "client": self.client_address[0],
                "status": status,
                "port": self.server.server_address[1],
            }
        )

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def host(self):
        return self.headers.get("Host", "").split(":")[0].lower()

    # --- dispatch ---------------------------------------------------------
    def dispatch(self):
        try:
            if self.server.server_address[1] == 80:
                return self.imds()
            host = self.host()
            if host == CONFIG.get("bundle_host"):
                return self.bundle()
            if self.headers.get("X-Amz-Target", "").startswith("AmazonSSM."):
                return self.ssm()
            return self.s3()
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = dispatch

    # --- IMDSv2 -----------------------------------------------------------
    def imds(self):
        path = urllib.parse.urlsplit(self.path).path
        if self.command == "PUT" and path == "/latest/api/token":
            self.body()
            return self.reply(200, TOKEN, "text/plain")
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            return self.reply(401, "", "text/plain")
        client = self.client_address[0]
        md = "/latest/meta-data/"
        if path == md + "placement/region":
            region = CONFIG["regions"].get(client, CONFIG["default_region"])
            return self.reply(200, region, "text/plain")
        if path == md + "iam/security-credentials/" or path == md + "iam/security-credentials":
            return self.reply(200, ROLE, "text/plain")
        if path == md + "iam/security-credentials/" + ROLE:
            creds = {
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIABOOTLABSTANDIN",
                "SecretAccessKey": "boot-lab-stand-in-secret",
                "Token": "boot-lab-stand-in-token",
                "Expiration": iso(time.time() + 6 * 3600)[:19] + "Z",
                "LastUpdated": iso(time.time())[:19] + "Z",
            }
            return self.reply(200, json.dumps(creds), "application/json")
        return self.reply(404, "", "text/plain")

    # --- SSM GetParameter -------------------------------------------------
    def ssm(self):
        raw = self.body()
        target = self.headers.get("X-Amz-Target", "")
        ctype = "application/x-amz-json-1.1"
        if target != "AmazonSSM.GetParameter" or self.command != "POST":
            return self.reply(400, json.dumps({"__type": "UnknownOperationException"}), ctype)
        if "AWS4-HMAC-SHA256" not in self.headers.get("Authorization", ""):
            return self.reply(400, json.dumps({"__type": "MissingAuthenticationTokenException"}), ctype)
        try:
            name = json.loads(raw)["Name"]
        except (ValueError, KeyError, TypeError):
            return self.reply(400, json.dumps({"__type": "ValidationException"}), ctype)
        value = CONFIG["parameters"].get(name)
        if value is None:
            return self.reply(400, json.dumps({"__type": "ParameterNotFound"}), ctype)
        p = {"Name": name, "Type": "SecureString", "Value": value, "Version": 1}
        return self.reply(200, json.dumps({"Parameter": p}), ctype)

    # --- HTTPS bundles ----------------------------------------------------
    def bundle(self):
        path = urllib.parse.urlsplit(self.path).path
        prefix = CONFIG["bundle_path"].rstrip("/") + "/"
        name = path[len(prefix):] if path.startswith(prefix) else ""
        if self.command != "GET" or not re.fullmatch(r"[A-Za-z0-9._-]+\.tar\.gz", name):
            return self.reply(404, "", "text/plain")
        f = os.path.join(CONFIG["bundles"], name)
        if not os.path.isfile(f):
            return self.reply(404, "", "text/plain")
        with open(f, "rb") as fh:
            return self.reply(200, fh.read(), "application/gzip")

    # --- S3 ---------------------------------------------------------------
    def bucket_key(self):
        u = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(u.path)
        host = self.host()
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        m = re.match(r"^([a-z0-9][a-z0-9.-]*)\.s3[.-]", host)
        if m:
            return m.group(1), path.lstrip("/"), q
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key, q

    def s3_error(self, status, code):
        body = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>"
        return self.reply(status, body)

    def s3(self):
        bucket, key, q = self.bucket_key()
        raw = self.body()
        if "AWS4-HMAC-SHA256" not in self.headers.get("Authorization", ""):
            return self.s3_error(403, "AccessDenied")
        bdir = os.path.join(CONFIG["s3"], safe_key(bucket))
        if not bucket or not os.path.isdir(bdir):
            return self.s3_error(404, "NoSuchBucket")
        if not key:
            if self.command == "GET":
                return self.list(bdir, q)
            if self.command == "POST" and "delete" in q:
                return self.delete_many(bdir, raw)
            return self.s3_error(400, "InvalidRequest")
        f = os.path.join(bdir, safe_key(key))
        if self.command == "POST" and "uploads" in q:
            uid = secrets.token_hex(12)
            UPLOADS[uid] = {}
            return self.reply(
                200,
                f"<InitiateMultipartUploadResult><Bucket>{html.escape(bucket)}</Bucket><Key>{html.escape(key)}</Key><UploadId>{uid}</UploadId></InitiateMultipartUploadResult>",
            )
        if self.command == "PUT" and "uploadId" in q:
            uid = q["uploadId"][0]
            if uid not in UPLOADS:
                return self.s3_error(404, "NoSuchUpload")
            n = int(q.get("partNumber", ["0"])[0])
            UPLOADS[uid][n] = raw
            return self.reply(200, "", headers={"ETag": '"%s"' % hashlib.md5(raw).hexdigest()})
        if self.command == "POST" and "uploadId" in q:
            uid = q["uploadId"][0]
            parts = UPLOADS.pop(uid, None)
            if parts is None:
                return self.s3_error(404, "NoSuchUpload")
            self.store(f, b"".join(parts[n] for n in sorted(parts)))
            return self.reply(
                200,
                f"<CompleteMultipartUploadResult><Bucket>{html.escape(bucket)}</Bucket><Key>{html.escape(key)}</Key><ETag>\"x\"</ETag></CompleteMultipartUploadResult>",
            )
        if self.command == "DELETE" and "uploadId" in q:
            UPLOADS.pop(q["uploadId"][0], None)
            return self.reply(204)
        if self.command == "PUT":
            self.store(f, raw)
            return self.reply(200, "", headers={"ETag": '"%s"' % hashlib.md5(raw).hexdigest()})
        if self.command in ("GET", "HEAD"):
            if not os.path.isfile(f):
                return self.s3_error(404, "NoSuchKey")
            st = os.stat(f)
            headers = {
                "Last-Modified": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(st.st_mtime)),
                "ETag": '"x"',
            }
            if self.command == "HEAD":
                self.send_response(200)
                self.send_header("Content-Length", str(st.st_size))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                log({"method": "HEAD", "host": self.headers.get("Host", ""), "path": self.path, "status": 200})
                return None
            with open(f, "rb") as fh:
                data = fh.read()
            rng = self.headers.get("Range", "")
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            if m:
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return self.reply(206, data[start : end + 1], "application/octet-stream", headers)
            return self.reply(200, data, "application/octet-stream", headers)
        if self.command == "DELETE":
            if os.path.isfile(f):
                os.remove(f)
            return self.reply(204)
        return self.s3_error(400, "InvalidRequest")

    def store(self, f, data):
        os.makedirs(os.path.dirname(f), exist_ok=True)
        tmp = f + ".standin-tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, f)

    def keys(self, bdir):
        out = []
        for d, _, files in os.walk(bdir):
            for n in files:
                if n.endswith(".standin-tmp"):
                    continue
                p = os.path.join(d, n)
                out.append((unquote_key(os.path.relpath(p, bdir)), p))
        return sorted(out)

    def list(self, bdir, q):
        prefix = q.get("prefix", [""])[0]
        delim = q.get("delimiter", [""])[0]
        after = q.get("start-after", [""])[0]
        contents, prefixes = [], []
        for k, p in self.keys(bdir):
            if not k.startswith(prefix) or k <= after:
                continue
            rest = k[len(prefix):]
            if delim and delim in rest:
                cp = prefix + rest.split(delim, 1)[0] + delim
                if cp not in prefixes:
                    prefixes.append(cp)
                continue
            st = os.stat(p)
            contents.append(
                f"<Contents><Key>{html.escape(k)}</Key><LastModified>{iso(st.st_mtime)}</LastModified>"
                f"<ETag>\"x\"</ETag><Size>{st.st_size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            )
        cps = "".join(f"<CommonPrefixes><Prefix>{html.escape(c)}</Prefix></CommonPrefixes>" for c in prefixes)
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{XMLNS}">'
            f"<Prefix>{html.escape(prefix)}</Prefix><KeyCount>{len(contents) + len(prefixes)}</KeyCount>"
            f"<IsTruncated>false</IsTruncated>{''.join(contents)}{cps}</ListBucketResult>"
        )
        return self.reply(200, body)

    def delete_many(self, bdir, raw):
        for k in re.findall(r"<Key>(.*?)</Key>", raw.decode("utf-8", "replace")):
            f = os.path.join(bdir, safe_key(html.unescape(k)))
            if os.path.isfile(f):
                os.remove(f)
        return self.reply(200, f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="{XMLNS}"></DeleteResult>')


def serve(port, tls):
    srv = ThreadingHTTPServer((CONFIG["address"], port), Handler)
    srv.daemon_threads = True
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(CONFIG["cert"], CONFIG["key"])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    return srv


def main():
    for b in CONFIG["buckets"]:
        os.makedirs(os.path.join(CONFIG["s3"], safe_key(b)), exist_ok=True)
    servers = [serve(80, False), serve(443, True)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers[1:]]
    for t in threads:
        t.start()
    open(CONFIG["ready"], "w").close()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
