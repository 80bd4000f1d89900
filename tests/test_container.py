"""packaging/Containerfile and packaging/k8s/, checked as far as a machine without a container runtime allows.

No image is built here (no docker or podman daemon, no registry). What is checked instead:

- the Containerfile itself: every file its build stage COPYs exists in the checkout and is not left out of
  the build context by .dockerignore; ENTRYPOINT and CMD are in exec form (liege is PID 1, not a shell);
  STOPSIGNAL, VOLUME and EXPOSE agree with the command line;
- its ENTRYPOINT + CMD, run as they are (paths mapped to temporary directories, the binary under test for
  /usr/bin/liege, a free port for 9191) as PID 1 of a new PID namespace, on the ConfigMap of packaging/k8s laid
  out as the kubelet lays it out: the app answers, the API needs the token from a non-loopback address and
  not from loopback, a ConfigMap update reloads the vassal, SIGTERM stops it all with status 0;
- the image's final stage in a Debian trixie root (the debootstrap chroot of tests/chroot.py, in an overlay,
  standing in for debian:trixie-slim): its RUN lines as written (apt installs the .deb that packaging/build-deb
  made, resolving its Depends; the `liege` user is created), then ENTRYPOINT + CMD as PID 1 inside it, on a
  ConfigMap mounted at the VOLUME, the vassal running as `liege`;
- the Kubernetes manifests: rendered by `kubectl kustomize` (offline), validated against Kubernetes' own
  schemas (kubernetes-validate, strict), and cross-checked with the Containerfile and the vassal file (mount
  path, args, ports, probes, grace period against the mercy).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import chroot
from liegetest import KubeletConfigMap, NsEmperor, free_port, http_get, register_for_report, wait_for

REPO = Path(__file__).resolve().parent.parent
CONTAINERFILE = REPO / "packaging" / "Containerfile"
K8S = REPO / "packaging" / "k8s"
KUBE_VERSIONS = ("1.30.0", "1.37.0")


def instructions(path: Path = CONTAINERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        word, _, rest = text.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "a continuation line ends the file"
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            result.append([])
        result[-1].append((word, rest))
    return result


def exec_form(stage: list[tuple[str, str]], word: str) -> list[str]:
    found = [rest for w, rest in stage if w == word]
    assert len(found) == 1, f"one {word} in the final stage: {found}"
    value = json.loads(found[0])  # exec form is a JSON array; shell form would not parse
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), value
    return value


def ignored(relative: str) -> bool:
    """Whether .dockerignore keeps this path out of the build context (its patterns are plain names here)."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    first = Path(relative).parts[0]
    return any(pattern.rstrip("/") == first for pattern in patterns if "*" not in pattern)


def command_line() -> list[str]:
    final = stages()[-1]
    return exec_form(final, "ENTRYPOINT") + exec_form(final, "CMD")


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# --------------------------------------------------------------------------------------------------------------
# The Containerfile


def test_containerfile_copies_files_that_exist_in_the_build_context():
    build, final = stages()[0], stages()[-1]
    copies = [rest.split() for word, rest in build if word == "COPY"]
    assert copies
    for args in copies:
        assert not any(a.startswith("--from") for a in args), args
        *sources, _dest = args
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the checkout"
            assert not ignored(source), f"COPY {source}: .dockerignore leaves it out of the context"
    # What the build stage runs is in what it copied: packaging/build-deb, its units, the crate.
    runs = " ".join(rest for word, rest in build if word == "RUN")
    assert "packaging/build-deb --root /" in runs
    for needed in ("packaging/build-deb", "packaging/liege-emperor.service", "packaging/liege@.service",
                   "Cargo.lock", "web/index.html", "crates/liege-config/Cargo.toml"):
        assert (REPO / needed).exists() and not ignored(needed), needed
    # The final stage takes the .deb from the build stage's --out, and installs it with apt (Depends resolved).
    out = option(shlex.split(runs), "--out")
    from_build = [rest.split() for word, rest in final if word == "COPY"]
    assert from_build == [["--from=build", out.rstrip("/") + "/", "/tmp/liege-deb/"]], from_build
    final_runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "apt-get install -y --no-install-recommends /tmp/liege-deb/liege_*.deb" in final_runs
    assert stages()[0][0][1].endswith("-trixie AS build") and final[0][1] == "docker.io/library/debian:trixie-slim"


def test_containerfile_runs_the_emperor_as_pid_1_on_the_volume():
    final = stages()[-1]
    argv = command_line()
    assert argv[:3] == ["/usr/bin/liege", "emperor", "/etc/liege/vassals"], argv
    assert ("VOLUME", '["/etc/liege/vassals"]') in final
    assert ("STOPSIGNAL", "SIGTERM") in final
    api = option(argv, "--api")
    assert api.startswith("0.0.0.0:") and ("EXPOSE", api.split(":")[1]) in final, (api, final)
    # The same run and log directories as the Debian package's unit, so the docs hold for both.
    unit = (REPO / "packaging" / "liege-emperor.service").read_text()
    assert f"--run-dir {option(argv, '--run-dir')}" in unit and f"--log-dir {option(argv, '--log-dir')}" in unit


# --------------------------------------------------------------------------------------------------------------
# The Kubernetes manifests


def rendered() -> list[dict]:
    yaml = pytest.importorskip("yaml")
    if shutil.which("kubectl"):
        text = subprocess.run(["kubectl", "kustomize", os.fspath(K8S)], check=True, capture_output=True,
                              text=True, timeout=60).stdout
    else:  # kustomize only concatenates these (no patches), so reading the files is the same
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
        text = "\n---\n".join((K8S / name).read_text() for name in kustomization["resources"])
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[dict]) -> dict[str, dict]:
    kinds = {doc["kind"]: doc for doc in docs}
    assert sorted(kinds) == ["ConfigMap", "Deployment", "Service"], sorted(kinds)
    return kinds


def ini_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith((";", "#", "[")):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_k8s_manifests_validate_against_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in rendered():
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError


def test_k8s_manifests_agree_with_the_image_and_the_vassal():
    kinds = by_kind(rendered())
    configmap, deployment, service = kinds["ConfigMap"], kinds["Deployment"], kinds["Service"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    argv = command_line()
    # The image's command line, plus the token from the Secret.
    args = container["args"]
    assert args[:len(argv) - 3] == argv[3:], (args, argv)
    token_file = option(args, "--api-token-file")
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    vassals = mounts["vassals"]
    assert vassals["mountPath"] == argv[2] and "subPath" not in vassals  # subPath mounts never update
    assert volumes["vassals"]["configMap"]["name"] == configmap["metadata"]["name"]
    token_mount = next(m for m in mounts.values() if token_file.startswith(m["mountPath"] + "/"))
    assert "secret" in volumes[token_mount["name"]]
    # Ports: the vassal's socket, the API's, the probes', the Service's.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    vassal_files = {k: ini_values(v) for k, v in configmap["data"].items() if k.endswith(".ini")}
    (vassal,) = vassal_files.values()
    assert vassal["http-socket"] == f"0.0.0.0:{ports['http']}", vassal
    assert option(args, "--api") == f"0.0.0.0:{ports['api']}"
    assert container["livenessProbe"]["httpGet"] == {"path": "/", "port": "api"}  # the token-free page
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    # Grace: preStop, then the longest mercy, then the emperor's 5 s per vassal, with margin.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    mercy = max(int(vassal.get("reload-mercy", 60)), int(vassal.get("worker-reload-mercy", 60)))
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + mercy + 5, pod
    # The app the vassal names comes with the ConfigMap.
    assert vassal["wsgi-file"] in configmap["data"]
    # The user it runs as is the one the image creates.
    assert vassal["uid"] == "liege" and "useradd" in CONTAINERFILE.read_text()


# --------------------------------------------------------------------------------------------------------------
# The image's command line, run as PID 1 on the ConfigMap


def non_loopback_address() -> str | None:
    """An address of this host that is not loopback (the API treats clients from it as remote), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing address
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def api_status(host: str, port: int, path: str, token: str | None = None) -> int:
    req = urllib.request.Request(f"http://{host}:{port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture
def image_emperor(request, tmp_path, liege_binary):
    made: list[NsEmperor] = []

    def make(argv: list[str], api_port: int) -> NsEmperor:
        e = NsEmperor(liege_binary, tmp_path, name="image")
        e.argv, e.api_port = argv, api_port
        made.append(e)
        register_for_report(request.node, e)
        return e.start()

    def adopt(e: NsEmperor) -> None:
        made.append(e)
        register_for_report(request.node, e)

    make.adopt = adopt
    yield make
    for e in made:
        e.kill_all()
    for e in made:
        wait_for(lambda e=e: not e.processes(), 10, "the namespace to be empty")


def test_the_images_command_line_as_pid_1_on_the_configmap(image_emperor, liege_binary, tmp_path):
    configmap = by_kind(rendered())["ConfigMap"]
    app_port, api_port = free_port(), free_port()
    data = dict(configmap["data"])
    # This host has no `liege` user (the image makes one): the vassal stays the test's user here.
    data = {key: "".join(line + "\n" for line in text.splitlines()
                         if not re.match(r"\s*(uid|gid)\s*=", line)).replace(":8000", f":{app_port}")
            for key, text in data.items()}
    cm = KubeletConfigMap(tmp_path / "vassals")
    cm.publish(data)
    argv = command_line()
    paths = {"/usr/bin/liege": os.fspath(liege_binary), "/etc/liege/vassals": os.fspath(cm.dir),
             "/run/liege/emperor": os.fspath(tmp_path / "run"), "/var/log/liege": os.fspath(tmp_path / "log"),
             "0.0.0.0:9191": f"0.0.0.0:{api_port}"}
    assert set(paths) <= set(argv), argv
    e = image_emperor([paths.get(arg, arg) for arg in argv], api_port)
    name = next(key for key in data if key.endswith(".ini"))[:-4]
    v, port = e.wait_serving(name)
    assert port == app_port and http_get(app_port, "/").text.startswith("hello from liege")
    # Loopback reads need no token; from another address of the host they do, and the token is in the run dir.
    token = (tmp_path / "run" / "api-token").read_text().strip()
    assert api_status("127.0.0.1", api_port, "/api/vassals") == 200
    remote = non_loopback_address()
    if remote is not None:
        assert api_status(remote, api_port, "/") == 200  # the dashboard page: what the liveness probe asks
        assert api_status(remote, api_port, "/api/vassals") == 401
        assert api_status(remote, api_port, "/api/vassals", token) == 200
        assert api_status(remote, app_port, "/") == 200
    # A ConfigMap update (the kubelet's swap) reloads the vassal with the new version first.
    data[f"{name}.py"] = data[f"{name}.py"].replace("hello from liege", "hello again")
    data[f"{name}.ini"] += "env = SECOND=1\n"
    cm.publish(data)
    e.wait_state(name, "running", where=lambda now: now["pid"] != v["pid"])
    wait_for(lambda: http_get(app_port, "/").text.startswith("hello again"), 20, "the new version")
    # `docker stop` / the kubelet: SIGTERM to PID 1, everything stops gracefully, status 0.
    os.kill(e.init, signal.SIGTERM)
    assert e.wait_exit(60) == 0, e.describe()
    assert "all vassals stopped; bye" in e.logs() and not e.processes()


# --------------------------------------------------------------------------------------------------------------
# The final stage, in a trixie root


def built_package() -> Path:
    debs = sorted((REPO / "target" / "deb").glob("liege_*.deb"))
    if not debs:
        message = "no Debian package (tests/run builds it: packaging/build-deb --root <trixie chroot>)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return debs[-1]


def test_the_final_stage_in_a_trixie_root_runs_the_emperor_as_pid_1(image_emperor, tmp_path):
    root = chroot.ready(*chroot.TRIXIE_PYTHON)
    if root is None:
        message = "no trixie chroot (tests/run prepares it: tests/chroot.py prepare trixie ...)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    deb = built_package()
    final = stages()[-1]
    # COPY --from=build /out/ /tmp/liege-deb/: the build stage's --out holds the .deb.
    layer = tmp_path / "layer"
    copied = layer / "upper" / "tmp" / "liege-deb"
    copied.mkdir(parents=True)
    shutil.copy(deb, copied / deb.name)
    for word, rest in final:
        if word == "RUN":  # the shell form, as the builder runs it
            done = chroot.run_inside(root, ["/bin/sh", "-c", rest], overlay=layer, capture_output=True, text=True,
                                     timeout=300)
            assert done.returncode == 0, f"RUN {rest}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    upper = layer / "upper"
    assert not (upper / "tmp" / "liege-deb").exists()
    status = chroot.run_inside(root, ["dpkg-query", "-W", "-f", "${Status} ${Version}", "liege"], overlay=layer,
                               capture_output=True, text=True, timeout=60)
    assert status.stdout.startswith("install ok installed"), status.stdout + status.stderr
    passwd = (upper / "etc" / "passwd").read_text()
    liege_uid = int(next(line for line in passwd.splitlines() if line.startswith("liege:")).split(":")[2])
    # The ConfigMap as the kubelet mounts it, at the VOLUME; ports mapped to free ones (the host's network).
    app_port, api_port = free_port(), free_port()
    configmap = by_kind(rendered())["ConfigMap"]
    data = {key: text.replace(":8000", f":{app_port}") for key, text in configmap["data"].items()}
    cm = KubeletConfigMap(tmp_path / "vassals")
    cm.publish(data)
    argv = [arg.replace(":9191", f":{api_port}") for arg in command_line()]
    env = {key: value for word, rest in final if word == "ENV" for key, value in [rest.split("=", 1)]}
    e = NsEmperor(Path(argv[0]), tmp_path, name="trixie", env=env)
    e.api_port = api_port
    e.unshare = ["unshare", "--pid", "--fork", "--kill-child"]
    e.argv = chroot.command(root, argv, overlay=layer, mounts={argv[2]: cm.dir})
    image_emperor.adopt(e)
    e.start()
    assert e.ns != pid_namespace_of_self()
    name = next(key for key in data if key.endswith(".ini"))[:-4]
    v, port = e.wait_serving(name)
    assert http_get(app_port, "/").text.startswith("hello from liege")
    # The vassal dropped to the image's `liege` user; the emperor (PID 1) is root.
    for pid in [v["pid"], *(w["pid"] for w in v["workers"])]:
        assert uid_of(e.host_pid(pid)) == liege_uid
    assert uid_of(e.init) == 0
    token = (upper / "run" / "liege" / "emperor" / "api-token").read_text().strip()
    remote = non_loopback_address()
    if remote is not None:
        assert api_status(remote, api_port, "/api/vassals") == 401
        assert api_status(remote, api_port, "/api/vassals", token) == 200
    assert (upper / "var" / "log" / "liege" / f"{name}.log").exists()
    os.kill(e.init, signal.SIGTERM)
    assert e.wait_exit(60) == 0, e.describe()
    assert "all vassals stopped; bye" in e.logs()
    wait_for(lambda: not e.processes(), 10, "the namespace to be empty")


def pid_namespace_of_self() -> str:
    return os.readlink("/proc/self/ns/pid")


def uid_of(host_pid: int) -> int:
    status = Path(f"/proc/{host_pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE).group(1))
