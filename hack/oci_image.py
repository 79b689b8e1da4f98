#!/usr/bin/env python3
"""Builds container images without a container engine: writes an OCI image layout (one gzip layer,
an image config, a manifest, index.json) and optionally pushes it with `skopeo copy`.

  operator     the operator's binary at /imagestream-operator, with the shared libraries and dynamic
               loader it links (none if static), the build machine's CA certificates, /etc/passwd and
               /etc/group with user 65532 `nonroot`, no shell; User 65532:65532,
               Entrypoint ["/imagestream-operator"], Cmd ["run"], as the Dockerfile.
  test-image   a busybox image (/bin/busybox and a symlink per applet) whose entrypoint prints the
               given message on one line and then sleeps until it is stopped (SIGTERM ends it at once).

The build is deterministic: entries sorted, fixed owners, modes and mtimes (SOURCE_DATE_EPOCH, default
0), gzip without name or time, so the same inputs on the same machine give the same digest. The
manifest digest is printed as the last line of stdout. Python 3.11, standard library only.

  hack/oci_image.py operator --binary target/release/imagestream-operator \\
      --push 127.0.0.1:5000/imagestream-operator:dev
  hack/oci_image.py test-image --message 'demo v2' --push 127.0.0.1:5000/demo:v2
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

NONROOT = 65532
PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = "root:x:0:\nnonroot:x:65532:\n"
# glibc's default without this file asks DNS before /etc/hosts; musl (the Dockerfile's build) reads
# /etc/hosts first. Keep that order.
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"


def log(message: str) -> None:
    print(f"oci_image: {message}", file=sys.stderr)


def fail(message: str) -> None:
    log(message)
    sys.exit(1)


class Layer:
    """The entries of one layer tar, keyed by path (no leading slash)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple] = {}

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self.entries:
                self.entries[parent] = ("dir", None, 0o755, 0, 0)

    def _add(self, path: str, entry: tuple) -> None:
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = entry

    def dir(self, path: str, mode: int = 0o755, owner: int = 0) -> None:
        self._add(path, ("dir", None, mode, owner, owner))

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._add(path, ("file", data, mode, 0, 0))

    def symlink(self, path: str, target: str) -> None:
        self._add(path, ("symlink", target, 0o777, 0, 0))

    def tar(self, mtime: int) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.entries):
                kind, data, mode, uid, gid = self.entries[path]
                info = tarfile.TarInfo(path)
                info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
                info.uname = info.gname = ""
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif kind == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, data
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return out.getvalue()


def elf_dependencies(binary: Path) -> list[str]:
    """The shared libraries and the dynamic loader `binary` loads, as absolute paths (ldd's)."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    output = result.stdout + result.stderr
    if "not a dynamic executable" in output or "statically linked" in output:
        return []
    if result.returncode != 0:
        fail(f"ldd {binary} failed: {output.strip()}")
    paths = []
    for line in output.splitlines():
        line = line.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            path = rest.split("(")[0].strip()
            if not path.startswith("/"):
                fail(f"{binary}: library {name.strip()} {path or 'not found'}")
            paths.append(path)
        elif line.startswith("/"):
            paths.append(line.split()[0])  # the loader (PT_INTERP)
    return sorted(set(paths))


def add_elf(layer: Layer, source: Path, dest: str) -> list[str]:
    """Adds an executable and what it links; returns the library paths added."""
    layer.file(dest, source.read_bytes(), 0o755)
    libraries = elf_dependencies(source)
    for path in libraries:
        layer.file(path, Path(path).read_bytes(), 0o755)
    return libraries


class Layout:
    """An OCI image layout directory (image-spec image-layout.md) holding one tagged image."""

    def __init__(self, root: Path) -> None:
        if root.exists():
            if not (root / "oci-layout").is_file() and any(root.iterdir()):
                fail(f"{root} exists and is not an OCI layout; not overwriting it")
            shutil.rmtree(root)
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.root = root

    def blob(self, data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def write_image(self, layer: Layer, config: dict, annotations: dict, tag: str, epoch: int) -> str:
        tar = layer.tar(epoch)
        compressed = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
            gz.write(tar)
        layer_desc = self.blob(compressed.getvalue(), MEDIA_LAYER)
        created = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        image_config = {
            "created": created,
            "architecture": go_arch(),
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]},
            "history": [{"created": created, "created_by": "hack/oci_image.py"}],
        }
        config_desc = self.blob(canonical(image_config), MEDIA_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config_desc,
            "layers": [layer_desc],
            "annotations": annotations,
        }
        manifest_desc = self.blob(canonical(manifest), MEDIA_MANIFEST)
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [dict(manifest_desc, annotations={"org.opencontainers.image.ref.name": tag})],
        }
        (self.root / "index.json").write_bytes(canonical(index))
        log(f"layer {layer_desc['digest']} ({layer_desc['size']} bytes, {len(layer.entries)} entries)")
        return manifest_desc["digest"]


def canonical(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def go_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def split_reference(reference: str) -> tuple[str, str]:
    """`registry/repository[:tag]` -> (name, tag); the tag defaults to `latest`."""
    if "@" in reference:
        fail(f"{reference}: push to a tag, not a digest")
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, "latest"
    return name, tag


def push(layout: Path, tag: str, reference: str, digest: str, tls_verify: bool) -> None:
    if shutil.which("skopeo") is None:
        fail("skopeo not found: run `make provision` (or apt-get install skopeo)")
    with tempfile.NamedTemporaryFile() as digest_file:
        command = [
            "skopeo", "copy", "--quiet", "--preserve-digests", f"--dest-tls-verify={str(tls_verify).lower()}",
            "--digestfile", digest_file.name, f"oci:{layout}:{tag}", f"docker://{reference}",
        ]
        log(" ".join(shlex.quote(c) for c in command))
        subprocess.run(command, check=True)
        pushed = Path(digest_file.name).read_text().strip()
    if pushed != digest:
        fail(f"the registry stored {pushed}, not {digest}")
    log(f"pushed {reference}@{digest}")


def operator_image(args: argparse.Namespace) -> tuple[Layer, dict, dict]:
    binary = Path(args.binary)
    if not binary.is_file():
        fail(f"{binary}: no such file (cargo build --release --bin imagestream-operator)")
    layer = Layer()
    with tempfile.TemporaryDirectory() as tmp:
        source = binary
        if not args.no_strip:
            source = Path(tmp) / binary.name
            subprocess.run(["strip", "-o", str(source), str(binary)], check=True)
        libraries = add_elf(layer, source, "imagestream-operator")
    log(f"binary {binary} ({'not stripped' if args.no_strip else 'stripped'}), libraries: {', '.join(libraries) or 'none (static)'}")
    layer.file("etc/ssl/certs/ca-certificates.crt", Path(args.ca_certificates).read_bytes())
    layer.file("etc/passwd", PASSWD.encode())
    layer.file("etc/group", GROUP.encode())
    layer.file("etc/nsswitch.conf", NSSWITCH.encode())
    layer.dir("home/nonroot", 0o700, NONROOT)
    layer.dir("root", 0o700)
    annotations = {
        "org.opencontainers.image.title": "imagestream-operator",
        "org.opencontainers.image.description": "OpenShift image streams and image-change triggers for any Kubernetes cluster",
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    if args.version:
        annotations["org.opencontainers.image.version"] = args.version
    if args.revision:
        annotations["org.opencontainers.image.revision"] = args.revision
    if args.source:
        annotations["org.opencontainers.image.source"] = args.source
    config = {
        "User": f"{NONROOT}:{NONROOT}",
        "Entrypoint": ["/imagestream-operator"],
        "Cmd": ["run"],
        "ExposedPorts": {"8080/tcp": {}},
        "WorkingDir": "/",
        "Labels": annotations,
    }
    return layer, config, annotations


ENTRYPOINT = """#!/bin/sh
printf '%s\\n' {message}
sleep 2147483647 &
trap 'kill $! 2>/dev/null; exit 0' TERM INT
wait
"""


def test_image(args: argparse.Namespace) -> tuple[Layer, dict, dict]:
    busybox = Path(args.busybox)
    if not busybox.is_file():
        fail(f"{busybox}: no such file (apt-get install busybox-static, or `make provision-node`)")
    layer = Layer()
    add_elf(layer, busybox, "bin/busybox")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and "/" not in applet:
            layer.symlink(f"bin/{applet}", "busybox")
    layer.file("entrypoint", ENTRYPOINT.format(message=shlex.quote(args.message)).encode(), 0o755)
    layer.dir("tmp", 0o1777)
    annotations = {
        "org.opencontainers.image.title": "imagestream-operator test image",
        "org.opencontainers.image.description": f"prints {args.message!r}, then sleeps",
    }
    config = {
        "User": f"{NONROOT}:{NONROOT}",
        "Entrypoint": ["/entrypoint"],
        "Env": ["PATH=/bin"],
        "WorkingDir": "/",
        "Labels": annotations,
    }
    return layer, config, annotations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="kind", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--output", help="the OCI layout directory (default target/oci/<kind>); rewritten")
    common.add_argument("--tag", help="the tag in the layout (default: the --push reference's tag, else latest)")
    common.add_argument("--push", metavar="REGISTRY/REPOSITORY[:TAG]", help="push with skopeo copy")
    common.add_argument("--tls-verify", action="store_true", help="require HTTPS with a verified certificate when pushing")
    operator = sub.add_parser("operator", parents=[common], help="the operator image")
    operator.add_argument("--binary", default="target/release/imagestream-operator")
    operator.add_argument("--ca-certificates", default="/etc/ssl/certs/ca-certificates.crt")
    operator.add_argument("--no-strip", action="store_true", help="keep the binary's symbols")
    operator.add_argument("--version", help="org.opencontainers.image.version")
    operator.add_argument("--revision", help="org.opencontainers.image.revision (the source commit)")
    operator.add_argument("--source", help="org.opencontainers.image.source (the source repository URL)")
    test = sub.add_parser("test-image", parents=[common], help="a busybox test image printing a message")
    test.add_argument("--message", required=True, help="the line the entrypoint prints, e.g. 'demo v2'")
    test.add_argument("--busybox", default="/bin/busybox", help="a busybox binary (busybox-static's)")
    args = parser.parse_args()

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    tag = args.tag or (split_reference(args.push)[1] if args.push else "latest")
    output = Path(args.output or f"target/oci/{args.kind}")
    layer, config, annotations = operator_image(args) if args.kind == "operator" else test_image(args)
    layout = Layout(output)
    digest = layout.write_image(layer, config, annotations, tag, epoch)
    log(f"wrote oci:{output}:{tag} {digest}")
    if args.push:
        push(output, tag, args.push, digest, args.tls_verify)
    print(digest)


if __name__ == "__main__":
    main()
