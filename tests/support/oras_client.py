"""Drives the Python `oras` client for tests/tests/oras.rs: push an artifact, or pull one.

    oras_client.py push HOST REPO:TAG FILE --artifact-type T [--config FILE] [--config-media-type M]
                        [--subject-digest D --subject-size N --subject-media-type M] [--annotation K=V]
    oras_client.py pull HOST REPO:TAG OUTDIR

Prints one JSON object on stdout. The Rust test does all checking against the registry itself.
"""

import argparse
import json
import os
import sys

import oras.client
import oras.oci

EMPTY_CONFIG_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"


class Client(oras.client.OrasClient):
    """oras-py has no artifactType parameter; the manifest it builds passes through upload_manifest, where the
    OCI 1.1 field is added."""

    artifact_type = None

    def upload_manifest(self, manifest, container):
        if self.artifact_type:
            manifest["artifactType"] = self.artifact_type
        return super().upload_manifest(manifest, container)


def client_for(host):
    """A client with the credentials in ORAS_USERNAME and ORAS_PASSWORD, which it sends as Basic auth with every
    request (oras-py's token backend keeps its first token even when a later request needs more)."""
    if not os.environ.get("ORAS_USERNAME"):
        return Client(hostname=host, insecure=True)
    client = Client(hostname=host, insecure=True, auth_backend="basic")
    client.auth.set_basic_auth(os.environ["ORAS_USERNAME"], os.environ["ORAS_PASSWORD"])
    return client


def push(args):
    client = client_for(args.host)
    client.artifact_type = args.artifact_type
    subject = None
    if args.subject_digest:
        subject = oras.oci.Subject(args.subject_media_type, args.subject_digest, args.subject_size)
    if args.config:
        manifest_config = f"{args.config}:{args.config_media_type}"
    else:
        # A path that does not exist makes oras-py upload the two-byte `{}` empty config under this media type.
        manifest_config = f"{os.path.join(os.path.dirname(args.file), 'no-config')}:{args.config_media_type}"
    annotations = dict(a.split("=", 1) for a in args.annotation)
    response = client.push(
        target=f"{args.host}/{args.target}",
        files=[args.file],
        manifest_config=manifest_config,
        manifest_annotations=annotations or None,
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )
    return {"status": response.status_code, "digest": response.headers.get("Docker-Content-Digest")}


def pull(args):
    client = client_for(args.host)
    files = client.pull(target=f"{args.host}/{args.target}", outdir=args.outdir)
    return {"files": files}


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("push")
    p.add_argument("host")
    p.add_argument("target")
    p.add_argument("file")
    p.add_argument("--artifact-type")
    p.add_argument("--config")
    p.add_argument("--config-media-type", default=EMPTY_CONFIG_MEDIA_TYPE)
    p.add_argument("--subject-digest")
    p.add_argument("--subject-size", type=int)
    p.add_argument("--subject-media-type", default="application/vnd.oci.image.manifest.v1+json")
    p.add_argument("--annotation", action="append", default=[])
    p.set_defaults(run=push)
    p = sub.add_parser("pull")
    p.add_argument("host")
    p.add_argument("target")
    p.add_argument("outdir")
    p.set_defaults(run=pull)
    args = parser.parse_args()
    json.dump(args.run(args), sys.stdout)


if __name__ == "__main__":
    main()
